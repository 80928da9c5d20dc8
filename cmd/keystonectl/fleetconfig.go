package main

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/keystone-edge/keystone/comms/controller"
	"github.com/keystone-edge/keystone/ota/sign"
)

// defaultFleetConfig is where fleet commands look for their configuration
// when --config is not given; ./fleet.toml is tried first.
const defaultFleetConfig = "/etc/keystone-fleet/fleet.toml"

// fleetConfig is fleet.toml: how the fleet controller reaches the broker,
// signs jobs and where it keeps its state file.
type fleetConfig struct {
	Broker      string `toml:"broker"`       // mqtts://host[:port]; required
	CAFile      string `toml:"ca_file"`      // the broker's CA; required
	CertFile    string `toml:"cert_file"`    // the controller's client certificate; required
	KeyFile     string `toml:"key_file"`     // its key; required
	TopicPrefix string `toml:"topic_prefix"` // "" means keystone
	State       string `toml:"state"`        // the state file; required
	SignKey     string `toml:"sign_key"`     // the ed25519 key that signs jobs; required to publish
}

// loadFleetConfig reads and checks path. Unknown keys are errors that
// name them: a misspelt key must not silently leave a default in place.
func loadFleetConfig(path string) (*fleetConfig, error) {
	doc, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read fleet configuration: %w", err)
	}
	var c fleetConfig
	if err := toml.NewDecoder(bytes.NewReader(doc)).DisallowUnknownFields().Decode(&c); err != nil {
		var strict *toml.StrictMissingError
		if errors.As(err, &strict) {
			var keys []string
			for _, e := range strict.Errors {
				keys = append(keys, strings.Join(e.Key(), "."))
			}
			return nil, fmt.Errorf("%s: unknown key(s): %s", path, strings.Join(keys, ", "))
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"broker", c.Broker}, {"ca_file", c.CAFile},
		{"cert_file", c.CertFile}, {"key_file", c.KeyFile}, {"state", c.State}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s: missing required key(s): %s", path, strings.Join(missing, ", "))
	}
	return &c, nil
}

// controllerConfig is the broker connection c describes, with the sign key
// loaded when needSign.
func (c *fleetConfig) controllerConfig(needSign bool) (controller.Config, error) {
	cc := controller.Config{BrokerURL: c.Broker, CAFile: c.CAFile, CertFile: c.CertFile, KeyFile: c.KeyFile,
		TopicPrefix: c.TopicPrefix}
	if !needSign {
		return cc, nil
	}
	if c.SignKey == "" {
		return cc, errors.New("fleet configuration has no sign_key: jobs cannot be signed")
	}
	key, err := readSignKey(c.SignKey)
	if err != nil {
		return cc, err
	}
	cc.SignKey = key
	return cc, nil
}

func readSignKey(path string) (ed25519.PrivateKey, error) {
	priv, err := sign.LoadPrivateKey(path)
	if err != nil {
		return nil, fmt.Errorf("sign key: %w", err)
	}
	return priv, nil
}
