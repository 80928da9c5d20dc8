package config_test

import (
	"fmt"

	"github.com/keystone-edge/keystone/agent/config"
)

func ExampleParse() {
	c, err := config.Parse("/etc/keystone/agent.toml", []byte(`
device_id = "pos-12"
data_dir  = "state"            # relative: joined to /etc/keystone

[api]
http_listen = ""               # no TCP listener

[components."com.example.hello".config]
interval_seconds = 10
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.DeviceID, c.LogLevel)
	fmt.Println(c.DataPaths().DB)
	fmt.Printf("socket %s, http %q\n", c.API.Socket, c.API.HTTPListen)
	fmt.Println(c.Artifacts.CacheLimit, c.Artifacts.KeepVersions)
	fmt.Println(c.Components["com.example.hello"]["interval_seconds"])
	// Output:
	// pos-12 info
	// /etc/keystone/state/keystone.db
	// socket /run/keystone/agent.sock, http ""
	// 2Gi 2
	// 10
}

func ExampleParse_errors() {
	_, err := config.Parse("agent.toml", []byte(`
device_id = "pos 12"
[mqtt]
brokr  = "mqtts://broker.example:8883"
broker = "mqtt://broker.example:1883"
[artifacts]
cache_limit = "lots"
`))
	fmt.Println(err)
	// Output:
	// agent.toml:2:1: device_id: "pos 12" must be 1 to 128 of A-Z a-z 0-9 . _ -
	// agent.toml:4:1: mqtt.brokr: unknown key
	// agent.toml:5:1: mqtt.broker: "mqtt://broker.example:1883" is plain TCP: use mqtts://, or set mqtt.insecure = true for a development broker
	// agent.toml:7:1: artifacts.cache_limit: invalid size "lots" (want e.g. "512Ki", "128Mi", "2Gi")
}
