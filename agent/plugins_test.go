package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/keystone-edge/keystone/agent/api"
)

// posPlugin is an exec plugin that keeps an offset in its state, reports
// a counter, a gauge and a histogram, and shows whether the deployment's
// config reached it in ctx.config.
const posPlugin = `#!/bin/sh
input=$(cat)
offset=0
case $input in
*'"last_offset":'*) rest=${input#*\"last_offset\":}; offset=${rest%%[!0-9]*} ;;
esac
offset=$((offset + 1))
seen=0
case $input in *'"store_id":"odesa-7"'*) seen=1 ;; esac
printf '{"metrics":[{"name":"tx","type":"counter","value":%s,"help":"POS transactions","labels":{"pos":"12"}},' "$offset"
printf '{"name":"queue_len","type":"gauge","value":3,"help":"Orders waiting"},'
printf '{"name":"config_seen","type":"gauge","value":%s,"help":"1 when ctx.config has the deployment override"},' "$seen"
printf '{"name":"latency_seconds","type":"histogram","help":"Transaction latency","buckets":{"0.1":4,"0.5":9,"+Inf":10},"sum":2.7,"count":10}],'
printf '"state":{"last_offset":%s}}\n' "$offset"
`

// pluginRecipe is a plugin recipe running command, scheduled hourly so that
// only its first run and the runs asked for happen during a test.
func pluginRecipe(name, command string) string {
	return fmt.Sprintf(`format = 1
[metadata]
name    = %q
version = "1.0.0"
kind    = "plugin"
[config.defaults]
store_id = "lab"
[plugin]
runtime  = "exec"
command  = %q
interval = "1h"
timeout  = "20s"
state    = true
[plugin.mapping]
prefix = "pos_"
labels = { store_id = "${config.store_id}", device = "${device.id}" }
rename = { tx = "transactions_total" }
`, name, command)
}

// pluginDeployment deploys the pos plugin (with a store_id override) and a
// plugin that always fails. The failing plugin never becomes ready (its
// first run fails), so a deployment with it uses failure_policy "keep" and
// a short health_timeout, and ends FAILED with the rest in place.
func pluginDeployment(t *testing.T, id, posCmd, failCmd string, withPos, withBroken bool) api.DeploymentRequest {
	t.Helper()
	var b strings.Builder
	policy, timeout := "rollback", "30s"
	if withBroken {
		policy, timeout = "keep", "3s"
	}
	fmt.Fprintf(&b, "format = 1\n[deployment]\nid = %q\nfailure_policy = %q\nhealth_timeout = %q\n", id, policy, timeout)
	files := map[string][]byte{}
	if withPos {
		b.WriteString("[[components]]\nname = \"com.example.pos\"\nversion = \"1.0.0\"\nrecipe = \"pos.recipe.toml\"\n")
		b.WriteString("[components.config]\nstore_id = \"odesa-7\"\n")
		files["pos.recipe.toml"] = []byte(pluginRecipe("com.example.pos", posCmd))
	}
	if withBroken {
		b.WriteString("[[components]]\nname = \"com.example.broken\"\nversion = \"1.0.0\"\nrecipe = \"broken.recipe.toml\"\n")
		files["broken.recipe.toml"] = []byte(pluginRecipe("com.example.broken", failCmd))
	}
	return api.DeploymentRequest{Manifest: b.String(), Files: files}
}

// waitSeries scrapes /metrics until the series has the value, and returns
// the scrape.
func waitSeries(t *testing.T, a *testAgent, name string, labels map[string]string, want float64) map[string]*dto.MetricFamily {
	t.Helper()
	deadline := time.After(waitFor)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		fams := scrape(t, "http://"+a.addrs.HTTP+"/metrics")
		if v, ok := sample(t, fams, name, labels); ok && v == want {
			return fams
		}
		select {
		case <-deadline:
			v, ok := sample(t, fams, name, labels)
			t.Fatalf("%s%v = %v (present %v), want %v\nlogs:\n%s", name, labels, v, ok, want, a.logs)
		case <-tick.C:
		}
	}
}

// Acceptance 1 end to end: an exec plugin deployed to a real agent has its
// metrics on /metrics with prefix, rename and labels applied (counter,
// gauge, histogram), its state carries from run to run and across an agent
// restart, run now answers the mapped metrics, a failing plugin fails its
// deployment and stays scheduled, DEGRADED with its failures shown,
// promtool accepts the agent's /metrics,
// and removing a plugin removes its textfile.
func TestPluginEndToEnd(t *testing.T) {
	bin := openDir(t)
	posCmd := filepath.Join(bin, "pos.sh")
	failCmd := filepath.Join(bin, "broken.sh")
	if err := os.WriteFile(posCmd, []byte(posPlugin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(failCmd, []byte("#!/bin/sh\necho 'cannot reach the till' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	textDir := filepath.Join(bin, "textfiles")
	cfg := agentConfig(t, fmt.Sprintf("[plugins]\ntextfile_dir = %q\n", textDir))
	a := startAgent(t, cfg, Options{})
	if d := a.deployAndWait(pluginDeployment(t, "plugins-1", posCmd, failCmd, true, false)); d.Status != "SUCCEEDED" {
		t.Fatalf("deployment %s: %s %s\nlogs:\n%s", d.ID, d.Status, d.Error, a.logs)
	}
	// A plugin's first run gates its deployment: one that fails it fails
	// the deployment, with the plugin's own words.
	if d := a.deployAndWait(pluginDeployment(t, "plugins-broken", posCmd, failCmd, true, true)); d.Status != "FAILED" ||
		d.RolledBack || !strings.Contains(d.Error, "com.example.broken") || !strings.Contains(d.Error, "cannot reach the till") {
		t.Fatalf("deployment with a failing plugin: %s rolled_back=%v: %s", d.Status, d.RolledBack, d.Error)
	}
	series := map[string]string{"pos": "12", "store_id": "odesa-7", "device": "test-device"}
	fams := waitSeries(t, a, "pos_transactions_total", series, 1) // the first, scheduled run
	if v, _ := sample(t, fams, "pos_queue_len", map[string]string{"store_id": "odesa-7"}); v != 3 {
		t.Errorf("pos_queue_len = %v", v)
	}
	if v, _ := sample(t, fams, "pos_config_seen", nil); v != 1 {
		t.Errorf("ctx.config lacks the deployment's store_id override")
	}
	h := fams["pos_latency_seconds"]
	if h.GetType() != dto.MetricType_HISTOGRAM || h.GetHelp() != "Transaction latency" ||
		h.GetMetric()[0].GetHistogram().GetSampleCount() != 10 || len(h.GetMetric()[0].GetHistogram().GetBucket()) != 3 {
		t.Errorf("histogram = %v", h)
	}
	if fams["pos_transactions_total"].GetType() != dto.MetricType_COUNTER || fams["pos_transactions_total"].GetHelp() != "POS transactions" {
		t.Errorf("counter family = %v", fams["pos_transactions_total"])
	}
	if _, ok := fams["pos_tx"]; ok {
		t.Error("the renamed metric is also served under its plugin name")
	}

	// Run now: the state handed back by the first run comes in again.
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ms, err := a.client.RunPlugin(ctx, "com.example.pos")
	if err != nil {
		t.Fatal(err)
	}
	var tx, hist *api.Metric
	for i := range ms {
		switch ms[i].Name {
		case "pos_transactions_total":
			tx = &ms[i]
		case "pos_latency_seconds":
			hist = &ms[i]
		}
	}
	if tx == nil || tx.Value != 2 || tx.Type != "counter" || tx.Labels["store_id"] != "odesa-7" {
		t.Fatalf("run now answered %+v", ms)
	}
	if hist == nil || hist.Buckets["+Inf"] != 10 || hist.Buckets["0.5"] != 9 || hist.Count != 10 || hist.Sum != 2.7 {
		t.Errorf("run now histogram = %+v", hist)
	}
	fams = waitSeries(t, a, "pos_transactions_total", series, 2)
	if v, _ := sample(t, fams, "keystone_plugin_runs_total", map[string]string{"plugin": "com.example.pos", "result": "ok"}); v != 2 {
		t.Errorf("runs_total ok = %v", v)
	}
	if v, _ := sample(t, fams, "keystone_plugin_up", map[string]string{"plugin": "com.example.pos"}); v != 1 {
		t.Errorf("up = %v", v)
	}

	// The failing plugin: RUNNING, its failures shown, run now says why.
	fams = waitSeries(t, a, "keystone_plugin_runs_total", map[string]string{"plugin": "com.example.broken", "result": "error"}, 1)
	if v, _ := sample(t, fams, "keystone_plugin_up", map[string]string{"plugin": "com.example.broken"}); v != 0 {
		t.Errorf("up of a failing plugin = %v", v)
	}
	c, err := a.client.Component(ctx, "com.example.broken")
	if err != nil {
		t.Fatal(err)
	}
	if c.State != "DEGRADED" || c.Health != "unhealthy" || c.Kind != "plugin" || !strings.Contains(c.LastError, "1 consecutive failed runs") ||
		!strings.Contains(c.LastError, "exited with code 3") || !strings.Contains(c.LastError, "cannot reach the till") {
		t.Errorf("failing plugin shown as %+v", c)
	}
	status, body := a.do("POST", "/v1/plugins/com.example.broken/run", nil)
	if e := apiError(t, body); status != http.StatusBadGateway || e.Code != api.CodePluginFailed || !strings.Contains(e.Message, "exited with code 3") {
		t.Errorf("run now of the failing plugin: %d %+v", status, e)
	}
	status, body = a.do("POST", "/v1/plugins/com.example.nothing/run", nil)
	if e := apiError(t, body); status != http.StatusNotFound || e.Code != api.CodeNotFound {
		t.Errorf("run now of an unknown plugin: %d %+v", status, e)
	}

	// The whole /metrics passes promtool's checks (metric names, the
	// plugins' series, Go and process metrics).
	checkWithPromtool(t, "http://"+a.addrs.HTTP+"/metrics")

	if b, err := os.ReadFile(filepath.Join(textDir, "com.example.pos.prom")); err != nil ||
		!strings.Contains(string(b), `pos_transactions_total{device="test-device",pos="12",store_id="odesa-7"} 2`) {
		t.Errorf("textfile: %v\n%s", err, b)
	}

	// An agent restart: the deployment is restored, and the plugin's first
	// run gets the state the last run saved.
	if err := a.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	a2 := startAgent(t, cfg, Options{})
	waitSeries(t, a2, "pos_transactions_total", series, 3)

	// Removed from the deployment: its textfile goes.
	if d := a2.deployAndWait(pluginDeployment(t, "plugins-2", posCmd, failCmd, false, false)); d.Status != "SUCCEEDED" {
		t.Fatalf("deployment %s: %s %s", d.ID, d.Status, d.Error)
	}
	if _, err := os.Stat(filepath.Join(textDir, "com.example.pos.prom")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("textfile of a removed plugin: %v", err)
	}
	if v, ok := sample(t, scrape(t, "http://"+a2.addrs.HTTP+"/metrics"), "keystone_plugin_up", map[string]string{"plugin": "com.example.pos"}); ok {
		t.Errorf("a removed plugin still has keystone_plugin_up = %v", v)
	}
}

// checkWithPromtool runs promtool check metrics on a scrape. In CI
// (CI=true) a missing promtool fails: .ci/run installs it.
func checkWithPromtool(t *testing.T, url string) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not installed; CI must install it (Debian package prometheus, see .ci/run)")
		}
		t.Log("SKIPPED LOUDLY: promtool is not installed (apt-get install prometheus); CI runs this check")
		return
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics on the agent's /metrics: %v\n%s\n--- scraped:\n%s", err, out, body)
	}
}

// openDir makes a folder every user can enter, removed after the test.
func openDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "keystone-agent-plugin-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}
