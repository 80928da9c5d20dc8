package recipes_test

import (
	"errors"
	"fmt"

	"github.com/keystone-edge/keystone/recipes"
)

func ExampleParseRecipe() {
	r, err := recipes.ParseRecipe("hello.recipe.toml", []byte(`
format = 1

[metadata]
name    = "com.example.hello"
version = "1.2.0"
kind    = "process"

[config.defaults]
interval_seconds = 30

[lifecycle.run]
command = "./hello"
args    = ["--interval", "${config.interval_seconds}"]
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	run := r.Lifecycle.Run
	fmt.Println(r.Metadata.Name, r.Metadata.Version, r.Metadata.Kind)
	fmt.Println(run.Command, run.Args)
	fmt.Println("defaults:", run.RestartPolicy, run.StopSignal, run.StopTimeout, run.MaxRestarts.Count, run.MaxRestarts.Window)
	// Output:
	// com.example.hello 1.2.0 process
	// ./hello [--interval ${config.interval_seconds}]
	// defaults: on-failure SIGTERM 10s 5 10m0s
}

func ExampleParseRecipe_errors() {
	_, err := recipes.ParseRecipe("hello.recipe.toml", []byte(`format = 1
[metadata]
name    = "com.example.hello"
version = "1.2"
kind    = "process"

[lifecycle.run]
command        = "./hello"
restart_policy = "sometimes"
stop_timeout   = "10 seconds"
args           = ["${config.port}"]
`))
	var list recipes.ErrorList
	if errors.As(err, &list) {
		for _, e := range list {
			fmt.Println(e)
		}
		fmt.Println(list[0].Path, list[0].Line)
	}
	// Output:
	// hello.recipe.toml:4:1: metadata.version: "1.2" is not a semantic version like "1.2.0" (invalid semantic version)
	// hello.recipe.toml:9:1: lifecycle.run.restart_policy: must be one of never, on-failure, always (got "sometimes")
	// hello.recipe.toml:10:1: lifecycle.run.stop_timeout: invalid duration "10 seconds" (want e.g. "500ms", "10s", "1h30m")
	// hello.recipe.toml:11:19: lifecycle.run.args[0]: unknown reference "${config.port}": config.defaults has no "port" (device and deployment config may override a default, not add one)
	// metadata.version 4
}

func ExampleInterpolate() {
	vars := map[string]string{"config.port": "8080", "device.id": "pos-12"}
	lookup := func(ref string) (string, bool) {
		v, ok := vars[ref]
		return v, ok
	}
	s, err := recipes.Interpolate("http://127.0.0.1:${config.port}/?device=${device.id}&literal=$${HOME}", lookup)
	fmt.Println(s, err)
	_, err = recipes.Interpolate("--token=${config.token}", lookup)
	fmt.Println(err, errors.Is(err, recipes.ErrUnknownReference))
	// Output:
	// http://127.0.0.1:8080/?device=pos-12&literal=${HOME} <nil>
	// unknown reference "${config.token}" at offset 8 true
}

func ExampleRecipe_Render() {
	r, err := recipes.ParseRecipe("hello.recipe.toml", []byte(`
format = 1
[metadata]
name    = "com.example.hello"
version = "1.2.0"
kind    = "process"
[config.defaults]
port  = 8080
level = "info"
[lifecycle.run]
command = "${component.version_dir}/hello"
args    = ["--listen", "127.0.0.1:${config.port}", "--id", "${device.id}"]
env     = { LOG_LEVEL = "${config.level}" }
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	device := map[string]any{"level": "debug"} // from agent.toml
	deployment := map[string]any{"port": 9090} // from the deployment manifest
	config := recipes.EffectiveConfig(r.Config.Defaults, device, deployment)
	out, err := r.Render(config, recipes.Vars{DeviceID: "pos-12",
		VersionDir: "/var/lib/keystone/components/com.example.hello/1.2.0"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(out.Lifecycle.Run.Command)
	fmt.Println(out.Lifecycle.Run.Args, out.Lifecycle.Run.Env)
	// Output:
	// /var/lib/keystone/components/com.example.hello/1.2.0/hello
	// [--listen 127.0.0.1:9090 --id pos-12] map[LOG_LEVEL:debug]
}

func ExampleParseManifest() {
	m, err := recipes.ParseManifest("deployment.toml", []byte(`
format = 1
[deployment]
id = "rollout-42"

[[components]]
name    = "com.example.hello"
version = "1.2.0"
recipe  = "recipes/hello.recipe.toml"
[components.config]
interval_seconds = 10
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.Deployment.ID, m.Deployment.FailurePolicy, m.Deployment.HealthTimeout)
	for _, c := range m.Components {
		fmt.Println(c.Name, c.Version, c.Recipe, c.Config)
	}
	// Output:
	// rollout-42 rollback 1m0s
	// com.example.hello 1.2.0 recipes/hello.recipe.toml map[interval_seconds:10]
}
