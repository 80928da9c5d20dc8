package config_test

import (
	"errors"
	"os"
	"testing"

	"github.com/keystone-edge/keystone/agent/config"
)

// FuzzParse: any bytes give a config or an ErrorList, never a panic, and
// a config is never returned with an error.
func FuzzParse(f *testing.F) {
	full, err := os.ReadFile("testdata/full.toml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(full)
	f.Add([]byte("device_id = 1\nmqtt = { brokr = 2, x = { y = [1, {z = 3}] } }\n[[api]]\nsocket = 3\n"))
	f.Add([]byte("[components.\"a\".config]\n\"quoted.key\" = 1978-05-27T07:32:00Z\n"))
	f.Add([]byte("a.b.c = 1\n[a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.Parse("fuzz.toml", data)
		if err != nil {
			var list config.ErrorList
			if c != nil || !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("Parse = %v, %v (%T)", c, err, err)
			}
			return
		}
		if c.DeviceID == "" {
			t.Fatal("a config without device_id was accepted")
		}
	})
}
