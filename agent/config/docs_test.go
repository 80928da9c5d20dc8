package config_test

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/agent/config"
)

// docs/configuration.md is the reference of agent.toml: its complete file
// parses, is the defaults (device_id and the example component aside), and
// its table names every key the agent reads.
func TestConfigurationDocListsEveryKey(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)```toml\n(.*?)```").FindSubmatch(doc)
	if block == nil {
		t.Fatal("docs/configuration.md has no complete agent.toml")
	}
	cfg, err := config.Parse("configuration.md", block[1])
	if err != nil {
		t.Fatalf("the documented agent.toml does not parse:\n%v", err)
	}
	want := config.Default()
	want.DeviceID = cfg.DeviceID
	got := *cfg
	got.Source, got.Components = want.Source, want.Components
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", *want) { // [] and nil alike
		t.Errorf("the documented file is not the defaults:\n got %+v\nwant %+v", got, *want)
	}
	for _, key := range tomlKeys(reflect.TypeOf(config.Config{}), "") {
		if !strings.Contains(string(doc), "`"+key+"`") && !strings.Contains(string(doc), key+"`,") {
			t.Errorf("docs/configuration.md does not describe %s", key)
		}
	}
}

// tomlKeys lists the dotted keys of a config struct's toml tags.
func tomlKeys(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" || name == "-" {
			continue
		}
		if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() == t.PkgPath() {
			out = append(out, tomlKeys(f.Type, prefix+name+".")...)
			continue
		}
		out = append(out, prefix+name)
	}
	return out
}
