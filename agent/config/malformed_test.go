package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/agent/config"
)

// TestMalformed checks that each wrong file is refused with an error at
// the right key and place. want lists every problem's Error() text, in
// order; a trailing "…" matches any rest of the message.
func TestMalformed(t *testing.T) {
	const head = "device_id = \"pos-12\"\n"
	tests := []struct {
		name string
		doc  string
		want []string
	}{
		{
			name: "unknown key in a table",
			doc:  head + "groups = []\ndata_dir = \"/d\"\nroot_dir = \"/r\"\n\n[mqtt]\nbrokr = \"mqtts://b:8883\"\n",
			want: []string{"agent.toml:7:1: mqtt.brokr: unknown key"},
		},
		{
			name: "unknown tables and keys, all of them",
			doc:  head + "colour = \"blue\"\n[foo]\nbar = 1\n[api]\nsockett = \"/x\"\n",
			want: []string{
				"agent.toml:2:1: colour: unknown key",
				"agent.toml:3:2: foo: unknown key",
				"agent.toml:6:1: api.sockett: unknown key",
			},
		},
		{
			name: "unknown key inside an inline table",
			doc:  head + "mqtt = { broker = \"\", topic_prefx = \"k\" }\n",
			want: []string{"agent.toml:2:23: mqtt.topic_prefx: unknown key"},
		},
		{
			name: "unknown key beside a component's config",
			doc:  head + "[components.\"com.example.hello\"]\nconfg = { a = 1 }\n",
			want: []string{`agent.toml:3:1: components."com.example.hello".confg: unknown key`},
		},
		{
			name: "device_id missing",
			doc:  "groups = [\"canary\"]\n",
			want: []string{"agent.toml: device_id: required"},
		},
		{
			name: "device_id with a space",
			doc:  "device_id = \"pos 12\"\n",
			want: []string{`agent.toml:1:1: device_id: "pos 12" must be 1 to 128 of A-Z a-z 0-9 . _ -`},
		},
		{
			name: "device_id too long",
			doc:  "device_id = \"" + strings.Repeat("x", 129) + "\"\n",
			want: []string{"agent.toml:1:1: device_id: \"xxx…"},
		},
		{
			name: "wrong types, every one of them",
			doc:  "device_id = 12\ngroups = \"canary\"\n[artifacts]\nkeep_versions = \"two\"\nallow_http = 1\n",
			want: []string{
				"agent.toml:1:1: device_id: must be a string, not an integer",
				"agent.toml:2:1: groups: must be an array of strings, not a string",
				"agent.toml:4:1: artifacts.keep_versions: must be an integer, not a string",
				"agent.toml:5:1: artifacts.allow_http: must be true or false, not an integer",
			},
		},
		{
			name: "array of the wrong things",
			doc:  head + "[trust]\nkeys = [\"/a.pub\", 7]\n",
			want: []string{"agent.toml:3:1: trust.keys: must be an array of strings, not an array holding an integer"},
		},
		{
			name: "a table where a value belongs",
			doc:  head + "[log_level]\nx = 1\n",
			want: []string{"agent.toml:2:2: log_level: must be a string, not a table"},
		},
		{
			name: "size that is not a size",
			doc:  head + "[artifacts]\ncache_limit = \"2 gigs\"\n",
			want: []string{`agent.toml:3:1: artifacts.cache_limit: invalid size "2 gigs"…`},
		},
		{
			name: "keep_versions zero and cache_limit negative",
			doc:  head + "[artifacts]\ncache_limit = -1\nkeep_versions = 0\n",
			want: []string{
				"agent.toml:3:1: artifacts.cache_limit: must not be negative",
				"agent.toml:4:1: artifacts.keep_versions: 0 must be at least 1 (the current version)",
			},
		},
		{
			name: "archive limits zero or negative",
			doc:  head + "[artifacts]\nmax_unpacked_size = 0\nmax_entries = -5\n",
			want: []string{
				"agent.toml:3:1: artifacts.max_unpacked_size: must be more than 0",
				"agent.toml:4:1: artifacts.max_entries: -5 must be at least 1",
			},
		},
		{
			name: "archive limits of the wrong kind",
			doc:  head + "[artifacts]\nmax_unpacked_size = \"huge\"\nmax_entries = \"many\"\nmax_entrys = 3\n",
			want: []string{
				`agent.toml:3:1: artifacts.max_unpacked_size: invalid size "huge"…`,
				"agent.toml:4:1: artifacts.max_entries: must be an integer, not a string",
				"agent.toml:5:1: artifacts.max_entrys: unknown key…",
			},
		},
		{
			name: "plain mqtt without insecure",
			doc:  head + "[mqtt]\nbroker = \"mqtt://broker.example:1883\"\n",
			want: []string{`agent.toml:3:1: mqtt.broker: "mqtt://broker.example:1883" is plain TCP: use mqtts://, or set mqtt.insecure = true for a development broker`},
		},
		{
			name: "broker with another scheme",
			doc:  head + "[mqtt]\nbroker = \"https://broker.example:8883\"\ninsecure = true\n",
			want: []string{`agent.toml:3:1: mqtt.broker: "https://broker.example:8883" must be an mqtts:// URL (mqtt:// only with mqtt.insecure = true)`},
		},
		{
			name: "broker without a port",
			doc:  head + "[mqtt]\nbroker = \"mqtts://broker.example\"\ncert_file = \"/c\"\nkey_file = \"/k\"\n",
			want: []string{`agent.toml:3:1: mqtt.broker: "mqtts://broker.example" must name a host and port…`},
		},
		{
			name: "mqtts without a client certificate",
			doc:  head + "[mqtt]\nbroker = \"mqtts://broker.example:8883\"\n",
			want: []string{"agent.toml:3:1: mqtt.broker: an mqtts:// broker needs mqtt.cert_file and mqtt.key_file…"},
		},
		{
			name: "certificate without its key",
			doc:  head + "[mqtt]\nbroker = \"mqtts://broker.example:8883\"\ncert_file = \"/c.pem\"\n",
			want: []string{"agent.toml:4:1: mqtt.cert_file: needs mqtt.key_file too"},
		},
		{
			name: "topic prefix with a wildcard",
			doc:  head + "[mqtt]\ntopic_prefix = \"fleet/#\"\n",
			want: []string{`agent.toml:3:1: mqtt.topic_prefix: "fleet/#" must be MQTT topic levels without wildcards or empty levels`},
		},
		{
			name: "log level",
			doc:  head + "log_level = \"verbose\"\n",
			want: []string{`agent.toml:2:1: log_level: "verbose" must be one of debug, info, warn, error`},
		},
		{
			name: "run_as with two colons",
			doc:  head + "default_run_as = \"a:b:c\"\n",
			want: []string{`agent.toml:2:1: default_run_as: "a:b:c" must be user or user:group`},
		},
		{
			name: "socket empty, listen address without a port, bad group",
			doc:  head + "[api]\nsocket = \"\"\nhttp_listen = \"localhost\"\nsocket_group = \"ops team\"\n",
			want: []string{
				"agent.toml:3:1: api.socket: must not be empty",
				`agent.toml:4:1: api.http_listen: "localhost" must be host:port…`,
				`agent.toml:5:1: api.socket_group: "ops team" is not a group name or id`,
			},
		},
		{
			name: "groups bad and repeated",
			doc:  head + "groups = [\"canary\", \"kyiv store\", \"canary\"]\n",
			want: []string{
				`agent.toml:2:1: groups: group "kyiv store" must be 1 to 128 of A-Z a-z 0-9 . _ -`,
				`agent.toml:2:1: groups: group "canary" is listed twice`,
			},
		},
		{
			name: "repository over http, and with no trust root",
			doc:  head + "[trust]\nrepository = \"http://repo.example/\"\n",
			want: []string{
				`agent.toml:3:1: trust.repository: "http://repo.example/" is plain http: use https://, or set artifacts.allow_http = true`,
				"agent.toml:3:1: trust.repository: needs trust.tuf_root…",
			},
		},
		{
			name: "component name that is not a component name",
			doc:  head + "[components.\"Hello World\".config]\nx = 1\n",
			want: []string{`agent.toml:2:13: components."Hello World": component name "Hello World" must be lowercase and dotted, like com.example.hello`},
		},
		{
			name: "syntax error",
			doc:  head + "[mqtt\nbroker = 1\n",
			want: []string{"agent.toml:2:6: …"},
		},
		{
			name: "duplicate key",
			doc:  head + "device_id = \"again\"\n",
			want: []string{"agent.toml:2:1: key device_id is already defined"},
		},
		{
			name: "everything at once, in file order",
			doc: "log_level = 3\n" + "device_id = \"bad id\"\n" + "[mqtt]\nbrokr = \"x\"\nbroker = \"tcp://x:1\"\n" +
				"[artifacts]\nkeep_versions = \"2\"\n",
			want: []string{
				"agent.toml:1:1: log_level: must be a string, not an integer",
				`agent.toml:2:1: device_id: "bad id" must be…`,
				"agent.toml:4:1: mqtt.brokr: unknown key",
				`agent.toml:5:1: mqtt.broker: "tcp://x:1" must be an mqtts:// URL…`,
				"agent.toml:7:1: artifacts.keep_versions: must be an integer, not a string",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Parse("agent.toml", []byte(tt.doc))
			if c != nil {
				t.Errorf("Parse returned a config along with error %v", err)
			}
			var list config.ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("Parse error = %v (%T), want a config.ErrorList", err, err)
			}
			if len(list) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(list), len(tt.want), err)
			}
			for i, want := range tt.want {
				got := list[i].Error()
				if prefix, ok := strings.CutSuffix(want, "…"); ok && strings.HasPrefix(got, prefix) || got == want {
					continue
				}
				t.Errorf("problem %d:\n got %s\nwant %s", i, got, want)
			}
			var one *config.Error
			if !errors.As(err, &one) || one != list[0] {
				t.Errorf("errors.As(err, *config.Error) does not reach the first problem")
			}
		})
	}
}
