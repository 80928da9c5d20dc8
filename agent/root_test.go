package agent

import (
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/agent/api"
)

// A root agent with the default configuration (security.allow_root =
// false, default_run_as = "") says at start that components naming no
// run_as will be refused, and refuses them: VALIDATION_FAILED, naming the
// component and the fix. With allow_root = true the same deployment runs.
func TestRootAgentRefusesComponentsWithoutRunAs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: this is about an agent running as root; run the tests as root (CI does)")
	}
	req := api.DeploymentRequest{
		Manifest: manifestText("root-1", "com.example.norunas@1.0.0"),
		Files: map[string][]byte{
			"com.example.norunas.recipe.toml": []byte(recipeText("com.example.norunas", "1.0.0", "exec sleep 1000")),
		},
	}
	cfg := agentConfig(t, "")
	cfg.Security.AllowRoot = false
	a := startAgent(t, cfg, Options{})
	if !strings.Contains(a.logs.String(), "components that name no run_as will be refused") {
		t.Errorf("no warning at start; logs:\n%s", a.logs)
	}
	status, body := a.do("POST", api.PathDeployments, jsonBody(t, req))
	if status != http.StatusUnprocessableEntity {
		t.Fatalf("status %d, want 422: %s", status, body)
	}
	e := apiError(t, body)
	joined := e.Message + "\n" + strings.Join(e.Details, "\n")
	if e.Code != api.CodeInvalid || !strings.Contains(joined, "com.example.norunas would run as root (uid 0); set security.run_as") {
		t.Fatalf("error %+v: want VALIDATION_FAILED naming the component and the fix", e)
	}

	allowed := startAgent(t, agentConfig(t, ""), Options{})
	if d := allowed.deployAndWait(req); d.Status != "SUCCEEDED" {
		t.Fatalf("allow_root = true: deployment %+v\nlogs:\n%s", d, allowed.logs)
	}
}

// An agent that ran components as root and is then restarted with
// allow_root = false (an upgrade to a release that enforces it, or an edit
// of agent.toml) still starts and stays reachable: the component it can no
// longer run fails on its own, saying why, and is never run as root.
func TestRootAgentStillStartsWhenItsCurrentSetNoLongerMayRunAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: this is about an agent running as root; run the tests as root (CI does)")
	}
	const name = "com.example.wasroot"
	req := api.DeploymentRequest{
		Manifest: manifestText("was-root-1", name+"@1.0.0"),
		Files:    map[string][]byte{name + ".recipe.toml": []byte(recipeText(name, "1.0.0", "exec sleep 1000"))},
	}
	cfg := agentConfig(t, "")
	before := startAgent(t, cfg, Options{})
	if d := before.deployAndWait(req); d.Status != "SUCCEEDED" {
		t.Fatalf("deployment with allow_root = true: %+v\nlogs:\n%s", d, before.logs)
	}
	if err := before.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	strict := *cfg
	strict.Security.AllowRoot = false
	after := startAgent(t, &strict, Options{})
	d := after.waitComponent(name, func(d api.ComponentDetail) bool { return d.State == "ERRORED" || d.State == "BROKEN" })
	if d.Pid != 0 || !strings.Contains(d.LastError, "root") {
		t.Errorf("component %+v: want it refused, with a reason naming root", d)
	}
	if status, body := after.do("POST", api.PathDeployments, jsonBody(t, req)); status != http.StatusOK && status != http.StatusAccepted {
		t.Errorf("the agent no longer takes deployments: %d %s", status, body)
	}
}
