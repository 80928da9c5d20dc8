package plugin

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
)

// Context is the document a plugin run reads on stdin. Its
// String, GoString and LogValue never show secret values or config, so a
// Context can be logged.
type Context struct {
	// Component and Version name the plugin component.
	Component string
	Version   string
	// DeviceID is agent.toml's device_id.
	DeviceID string
	// Config is the component's effective configuration; nil is sent as {}.
	Config map[string]any
	// State is what the previous run returned (JSON); nil is sent as null
	// (first run, or a plugin without state = true).
	State json.RawMessage
	// Secrets are the recipe's [secrets] resolved to values; nil is sent as
	// {}. They reach the plugin only here, never its environment.
	Secrets map[string]string
}

// wireContext is the document as sent.
type wireContext struct {
	Component string            `json:"component"`
	Version   string            `json:"version"`
	DeviceID  string            `json:"device_id"`
	Config    map[string]any    `json:"config"`
	State     json.RawMessage   `json:"state"`
	Secrets   map[string]string `json:"secrets"`
}

// MarshalJSON encodes the document as the plugin reads it, with config,
// state and secrets always present.
func (c Context) MarshalJSON() ([]byte, error) {
	w := wireContext{
		Component: c.Component, Version: c.Version, DeviceID: c.DeviceID,
		Config: c.Config, State: c.State, Secrets: c.Secrets,
	}
	if w.Config == nil {
		w.Config = map[string]any{}
	}
	if len(w.State) == 0 {
		w.State = json.RawMessage("null")
	}
	if w.Secrets == nil {
		w.Secrets = map[string]string{}
	}
	b, err := json.Marshal(w)
	if err != nil {
		// The only non-JSON input is config (a TOML value json cannot
		// encode) or a state that is not JSON; neither is a secret.
		return nil, fmt.Errorf("encode context of %s: config or state cannot be JSON", c.Component)
	}
	return b, nil
}

// String describes the context without config, state or secret values.
func (c Context) String() string {
	return fmt.Sprintf("%s@%s device=%s config=%v secrets=%v state=%d bytes",
		c.Component, c.Version, c.DeviceID, slices.Sorted(maps.Keys(c.Config)), slices.Sorted(maps.Keys(c.Secrets)), len(c.State))
}

// GoString is String, so that %#v cannot print secrets either.
func (c Context) GoString() string { return "plugin.Context{" + c.String() + "}" }

// LogValue shows the context in structured logs without secret values.
func (c Context) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("component", c.Component),
		slog.String("version", c.Version),
		slog.Any("config_keys", slices.Sorted(maps.Keys(c.Config))),
		slog.Any("secrets", slices.Sorted(maps.Keys(c.Secrets))),
		slog.Int("state_bytes", len(c.State)),
	)
}
