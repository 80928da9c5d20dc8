package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/keystone-edge/keystone/ota/sign"
)

// comp describes one component the tests deploy: the svc program at a
// version, as its recipe and its entry in a manifest.
type comp struct {
	short   string // the name's last part; the full name is device.name(short)
	version string
	// port, when not 0, makes svc serve /healthz there and the recipe
	// check it (http://127.0.0.1:PORT/healthz).
	port int
	// greeting is a deployment config override (config.greeting), which
	// reaches svc as --greeting and $GREETING; "" = the recipe default.
	greeting string
	hard     []string // short names of hard dependencies
	soft     []string // short names of soft dependencies
	// fail makes this version a bad release: "exit" exits at once with
	// status 3, "unhealthy" runs but answers /healthz with 503.
	fail string
	// tick, when set, makes svc print "tick N" this often ("10ms").
	tick string
	// plugin makes it a metrics plugin (a shell script reporting up = 1
	// every two seconds) instead of svc.
	plugin bool
}

// recipe is the component's recipe text: svc fetched from a file:// URI
// with its sha256, exec'd from the version folder, in its work folder.
func (d *device) recipe(c comp) string {
	d.t.Helper()
	name := d.name(c.short)
	if c.plugin {
		return fmt.Sprintf(`format = 1

[metadata]
name    = %q
version = %q
kind    = "plugin"

[plugin]
runtime  = "exec"
command  = "/bin/sh"
args     = ["-c", "cat >/dev/null; echo '{\"metrics\":[{\"name\":\"up\",\"type\":\"gauge\",\"value\":1}]}'"]
interval = "2s"
timeout  = "1s"
`, name, c.version)
	}
	args := []string{"--marker", d.marker(name), "--greeting", "${config.greeting}"}
	switch c.fail {
	case "exit":
		args = append(args, "--exit-now")
	case "unhealthy":
		args = append(args, "--unhealthy")
	}
	if c.port != 0 {
		args = append(args, "--listen", "127.0.0.1:${config.port}")
	}
	if c.tick != "" {
		args = append(args, "--tick", c.tick)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `format = 1

[metadata]
name        = %q
version     = %q
kind        = "process"
description = "svc, deployed by the end-to-end tests"

[config.defaults]
greeting = "hello"
port     = %d

[[artifacts]]
uri        = "file://%s"
sha256     = %q
executable = true

[lifecycle.run]
command         = "./svc"
args            = %s
env             = { SVC_VERSION = "${component.version}", GREETING = "${config.greeting}" }
restart_policy  = "on-failure"
restart_backoff = { initial = "100ms", max = "500ms" }
max_restarts    = { count = 2, window = "1m" }
stop_timeout    = "5s"
`, name, c.version, c.port, built.svc, built.svcSHA256, tomlList(args))
	if c.port != 0 {
		fmt.Fprintf(&b, `
[lifecycle.run.health]
check             = "http://127.0.0.1:${config.port}/healthz"
interval          = "200ms"
timeout           = "150ms"
failure_threshold = 2
`)
	}
	for _, dep := range c.hard {
		fmt.Fprintf(&b, "\n[[dependencies]]\nname = %q\ntype = \"hard\"\n", d.name(dep))
	}
	for _, dep := range c.soft {
		fmt.Fprintf(&b, "\n[[dependencies]]\nname = %q\ntype = \"soft\"\n", d.name(dep))
	}
	return b.String()
}

func tomlList(items []string) string {
	quoted := make([]string, len(items))
	for i, s := range items {
		quoted[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

// manifestOptions are a manifest's [deployment] settings.
type manifestOptions struct {
	healthTimeout string // "" = 20s
	failurePolicy string // "" = rollback
}

// writeDeployment writes the recipes of comps (signed with the device's
// key unless the device allows unsigned recipes) and a manifest listing
// them all as id into a folder of their own, and returns the manifest's
// path.
func (d *device) writeDeployment(id string, o manifestOptions, comps ...comp) string {
	d.t.Helper()
	dir := filepath.Join(d.dir, "deployments", id)
	if err := os.MkdirAll(filepath.Join(dir, "recipes"), 0o755); err != nil {
		d.t.Fatal(err)
	}
	if o.healthTimeout == "" {
		o.healthTimeout = "20s"
	}
	if o.failurePolicy == "" {
		o.failurePolicy = "rollback"
	}
	var m strings.Builder
	fmt.Fprintf(&m, "format = 1\n\n[deployment]\nid             = %q\nfailure_policy = %q\nhealth_timeout = %q\n",
		id, o.failurePolicy, o.healthTimeout)
	for _, c := range comps {
		rel := "recipes/" + c.short + "-" + c.version + ".recipe.toml"
		d.writeRecipe(filepath.Join(dir, filepath.FromSlash(rel)), d.recipe(c))
		fmt.Fprintf(&m, "\n[[components]]\nname    = %q\nversion = %q\nrecipe  = %q\n", d.name(c.short), c.version, rel)
		if c.greeting != "" {
			fmt.Fprintf(&m, "[components.config]\ngreeting = %q\n", c.greeting)
		}
	}
	path := filepath.Join(dir, "deployment.toml")
	if err := os.WriteFile(path, []byte(m.String()), 0o644); err != nil {
		d.t.Fatal(err)
	}
	return path
}

// writeRecipe writes a recipe file and, on a device that checks
// signatures, its detached signature.
func (d *device) writeRecipe(path, text string) {
	d.t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		d.t.Fatal(err)
	}
	if d.unsigned {
		return
	}
	priv, err := sign.LoadPrivateKey(d.key)
	if err != nil {
		d.t.Fatal(err)
	}
	if err := sign.SignFileWithKey(priv, path); err != nil {
		d.t.Fatal(err)
	}
}

// freePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func (d *device) freePort() int {
	d.t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		d.t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
