package recipes_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/recipes"
)

const renderRecipe = `format = 1
[metadata]
name = "com.example.render"
version = "2.1.0"
kind = "process"
description = "keeps ${config.port} literally"

[config.defaults]
port = 8080
ratio = 0.5
debug = false
db = { host = "localhost", user = "app" }

[lifecycle.install]
script = "echo installing ${component.name}@${component.version} into ${component.version_dir}"

[lifecycle.run]
command = "${component.version_dir}/bin/server"
args = ["--port", "${config.port}", "--db", "${config.db.user}@${config.db.host}", "--ratio=${config.ratio}", "--literal=$${HOME}"]
env = { DEBUG = "${config.debug}", WORK = "${component.work_dir}", DEVICE = "${device.id}" }
working_dir = "data"

[lifecycle.run.health]
check = "tcp://127.0.0.1:${config.port}"

[lifecycle.shutdown]
script = "echo bye from ${device.id}"
`

func TestRenderResolvesTheInterpolatedFields(t *testing.T) {
	r, err := recipes.ParseRecipe("render.recipe.toml", []byte(renderRecipe))
	if err != nil {
		t.Fatal(err)
	}
	before, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	device := map[string]any{"port": int64(9000), "db": map[string]any{"host": "db.local"}}
	deployment := map[string]any{"port": int64(9100), "debug": true}
	vars := recipes.Vars{DeviceID: "pos-12", WorkDir: "/var/lib/keystone/work/com.example.render",
		VersionDir: "/var/lib/keystone/components/com.example.render/2.1.0"}

	out, err := r.Render(recipes.EffectiveConfig(r.Config.Defaults, device, deployment), vars)
	if err != nil {
		t.Fatal(err)
	}
	run := out.Lifecycle.Run
	if want := vars.VersionDir + "/bin/server"; run.Command != want {
		t.Errorf("command = %q, want %q", run.Command, want)
	}
	wantArgs := []string{"--port", "9100", "--db", "app@db.local", "--ratio=0.5", "--literal=${HOME}"}
	if !reflect.DeepEqual(run.Args, wantArgs) {
		t.Errorf("args = %q, want %q", run.Args, wantArgs)
	}
	wantEnv := map[string]string{"DEBUG": "true", "WORK": vars.WorkDir, "DEVICE": "pos-12"}
	if !reflect.DeepEqual(run.Env, wantEnv) {
		t.Errorf("env = %q, want %q", run.Env, wantEnv)
	}
	if run.Health.Check != "tcp://127.0.0.1:9100" {
		t.Errorf("health check = %q", run.Health.Check)
	}
	if got := out.Lifecycle.Install.Script; got != "echo installing com.example.render@2.1.0 into "+vars.VersionDir {
		t.Errorf("install script = %q", got)
	}
	if got := out.Lifecycle.Shutdown.Script; got != "echo bye from pos-12" {
		t.Errorf("shutdown script = %q", got)
	}
	// Fields that are not interpolated are copied as they are.
	if out.Metadata.Description != "keeps ${config.port} literally" || run.WorkingDir != "data" {
		t.Errorf("uninterpolated fields changed: %q %q", out.Metadata.Description, run.WorkingDir)
	}
	// The receiver is untouched and shares nothing with the result.
	after, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Errorf("Render modified its receiver:\n%s\n---\n%s", before, after)
	}
	out.Config.Defaults["db"].(map[string]any)["host"] = "changed"
	out.Lifecycle.Run.Env["NEW"] = "x"
	if r.Config.Defaults["db"].(map[string]any)["host"] != "localhost" || len(r.Lifecycle.Run.Env) != 3 {
		t.Error("the rendered copy shares maps with the receiver")
	}
}

func TestRenderDefaultsFillMissingConfig(t *testing.T) {
	r, err := recipes.ParseRecipe("render.recipe.toml", []byte(renderRecipe))
	if err != nil {
		t.Fatal(err)
	}
	// Only overrides, without the defaults: the recipe's defaults fill in.
	out, err := r.Render(map[string]any{"ratio": 0.25}, recipes.Vars{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"--port", "8080", "--db", "app@localhost", "--ratio=0.25", "--literal=${HOME}"}
	if !reflect.DeepEqual(out.Lifecycle.Run.Args, want) {
		t.Errorf("args = %q, want %q", out.Lifecycle.Run.Args, want)
	}
}

func TestRenderErrors(t *testing.T) {
	r, err := recipes.ParseRecipe("render.recipe.toml", []byte(renderRecipe))
	if err != nil {
		t.Fatal(err)
	}
	// An override that turns a value into a table, and a port that makes
	// the health check unusable once resolved.
	_, err = r.Render(map[string]any{"port": "", "ratio": map[string]any{"x": 1}}, recipes.Vars{})
	var list recipes.ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("Render error = %v, want an ErrorList", err)
	}
	want := []string{
		`render.recipe.toml: lifecycle.run.args[4]: reference "${config.ratio}" is a table, not a single value`,
		`render.recipe.toml: lifecycle.run.health.check: "tcp://127.0.0.1:": tcp:// needs host:port, like "tcp://127.0.0.1:5432"`,
	}
	if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestRenderPluginFields(t *testing.T) {
	r := mustParseRecipe(t, "testdata/valid/spec-plugin.recipe.toml")
	out, err := r.Render(map[string]any{"store_id": "lviv-7"}, recipes.Vars{DeviceID: "pos-1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := out.Plugin.Mapping.Labels["store_id"]; got != "lviv-7" {
		t.Errorf("label = %q", got)
	}
	if !reflect.DeepEqual(out.Plugin.Args, []string{"--store", "lviv-7"}) {
		t.Errorf("args = %q", out.Plugin.Args)
	}
	if r.Plugin.Mapping.Labels["store_id"] != "${config.store_id}" {
		t.Error("Render modified the receiver's labels")
	}
}

func TestEffectiveConfig(t *testing.T) {
	defaults := map[string]any{"a": int64(1), "t": map[string]any{"x": "d", "y": "d", "deep": map[string]any{"k": "d"}}, "l": []any{"d"}}
	device := map[string]any{"t": map[string]any{"y": "dev", "deep": map[string]any{"k2": "dev"}}, "b": "dev"}
	deployment := map[string]any{"t": map[string]any{"x": "dep"}, "l": []any{"dep1", "dep2"}, "b": "dep"}
	// fmt prints maps with sorted keys, so this is a stable deep snapshot.
	snapshot := func() string { return fmt.Sprintf("%#v %#v %#v", defaults, device, deployment) }
	orig := snapshot()

	got := recipes.EffectiveConfig(defaults, device, deployment)
	want := map[string]any{
		"a": int64(1),
		"b": "dep",
		"t": map[string]any{"x": "dep", "y": "dev", "deep": map[string]any{"k": "d", "k2": "dev"}},
		"l": []any{"dep1", "dep2"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("EffectiveConfig = %v\nwant %v", got, want)
	}
	got["t"].(map[string]any)["deep"].(map[string]any)["k"] = "mutated"
	got["l"].([]any)[0] = "mutated"
	if snapshot() != orig {
		t.Error("EffectiveConfig's inputs changed, or the result shares with them")
	}
	if empty := recipes.EffectiveConfig(nil, nil, nil); empty == nil || len(empty) != 0 {
		t.Errorf("EffectiveConfig(nil, nil, nil) = %#v, want an empty map", empty)
	}
}

func TestCheckConfigRefusesInventedKeys(t *testing.T) {
	r, err := recipes.ParseRecipe("render.recipe.toml", []byte(renderRecipe))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.CheckConfig(map[string]any{"port": int64(1), "db": map[string]any{"host": "x"}}); err != nil {
		t.Errorf("overrides of existing keys refused: %v", err)
	}
	err = r.CheckConfig(map[string]any{"prot": int64(1), "db": map[string]any{"host": "x", "usr": "y"}, "ratio": map[string]any{"a": 1}})
	var list recipes.ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("CheckConfig = %v, want an ErrorList", err)
	}
	want := []string{
		"db.usr: not in the config.defaults of com.example.render; config may override a default, not add one",
		"prot: not in the config.defaults of com.example.render; config may override a default, not add one",
		"ratio: is a table, but its default is a float (0.5)",
	}
	if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, want) {
		t.Errorf("CheckConfig errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// An override must have its default's type: the component was written for
// it (interval_seconds = "fast" would reach it as a string). An integer may
// stand for a float, and any array for an array.
func TestCheckConfigRefusesOtherTypes(t *testing.T) {
	r, err := recipes.ParseRecipe("render.recipe.toml", []byte(renderRecipe))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.CheckConfig(map[string]any{"port": int64(9), "ratio": int64(1)}); err != nil {
		t.Errorf("an integer for a float refused: %v", err)
	}
	err = r.CheckConfig(map[string]any{"port": "fast", "ratio": "half", "db": map[string]any{"host": int64(5)}})
	want := []string{
		`db.host: is an integer (5), but its default is a string ("localhost")`,
		`port: is a string ("fast"), but its default is an integer (8080)`,
		`ratio: is a string ("half"), but its default is a float (0.5)`,
	}
	if err == nil {
		t.Fatal("wrong types accepted")
	}
	if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, want) {
		t.Errorf("CheckConfig errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
