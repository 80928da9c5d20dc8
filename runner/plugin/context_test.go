package plugin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestContextDocumentShapeAndNoSecretInLogs(t *testing.T) {
	c := Context{
		Component: "com.example.pos", Version: "1.0.0", DeviceID: "pos-12",
		Config:  map[string]any{"store_id": "kyiv-001"},
		State:   json.RawMessage(`{"last_offset":1234}`),
		Secrets: map[string]string{"DB_PASS": "hunter2-secret"},
	}
	b, err := c.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"component":"com.example.pos","version":"1.0.0","device_id":"pos-12","config":{"store_id":"kyiv-001"},` +
		`"state":{"last_offset":1234},"secrets":{"DB_PASS":"hunter2-secret"}}`
	if string(b) != want {
		t.Errorf("document = %s\nwant       %s", b, want)
	}
	empty, err := Context{Component: "x"}.MarshalJSON()
	if err != nil || string(empty) != `{"component":"x","version":"","device_id":"","config":{},"state":null,"secrets":{}}` {
		t.Errorf("empty document = %s, %v", empty, err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("run", "ctx", c)
	for _, s := range []string{c.String(), c.GoString(), fmt.Sprintf("%v %+v %#v", c, c, c), logged.String()} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("secret value shown: %s", s)
		}
		if !strings.Contains(s, "DB_PASS") {
			t.Errorf("secret name not shown: %s", s)
		}
	}
}
