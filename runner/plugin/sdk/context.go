package sdk

import (
	"encoding/json"
	"fmt"
	"io"
)

// Context is the document a plugin run reads on stdin.
type Context struct {
	Component string `json:"component"`
	Version   string `json:"version"`
	DeviceID  string `json:"device_id"`
	// Config is the component's effective configuration (recipe defaults,
	// then agent.toml, then the deployment's overrides); never nil after
	// ReadContext.
	Config map[string]any `json:"config"`
	// State is what the previous run returned; JSON null on the first run
	// or when the recipe does not set plugin.state = true.
	State json.RawMessage `json:"state"`
	// Secrets are the recipe's [secrets] by name; never nil after
	// ReadContext. Do not print them.
	Secrets map[string]string `json:"secrets"`
}

// ReadContext reads the context document from r (os.Stdin).
func ReadContext(r io.Reader) (*Context, error) {
	var c Context
	if err := json.NewDecoder(r).Decode(&c); err != nil {
		return nil, fmt.Errorf("read plugin context: %w", err)
	}
	if c.Config == nil {
		c.Config = map[string]any{}
	}
	if c.Secrets == nil {
		c.Secrets = map[string]string{}
	}
	return &c, nil
}

// LoadState decodes the previous run's state into v; with no state (null)
// v is left as it is.
func (c *Context) LoadState(v any) error {
	if len(c.State) == 0 || string(c.State) == "null" {
		return nil
	}
	if err := json.Unmarshal(c.State, v); err != nil {
		return fmt.Errorf("load plugin state: %w", err)
	}
	return nil
}

// ConfigString returns config[key] as a string, or def when it is absent
// or not a string.
func (c *Context) ConfigString(key, def string) string {
	if s, ok := c.Config[key].(string); ok {
		return s
	}
	return def
}

// ConfigNumber returns config[key] as a number, or def when it is absent
// or not a number.
func (c *Context) ConfigNumber(key string, def float64) float64 {
	if f, ok := c.Config[key].(float64); ok {
		return f
	}
	return def
}
