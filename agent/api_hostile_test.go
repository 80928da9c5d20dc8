package agent

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/agent/api"
)

// hostileNames are file names a client may send that no file can have.
func hostileNames() map[string]map[string][]byte {
	x := []byte("x")
	return map[string]map[string][]byte{
		"dot":              {".": x},
		"dot-dot":          {"../escape.toml": x},
		"absolute":         {"/etc/passwd": x},
		"nul":              {"a\x00b.toml": x},
		"escape sequence":  {"a\x1b[2J.toml": x},
		"long component":   {strings.Repeat("n", 256) + ".toml": x},
		"long path":        {strings.Repeat("d/", 2100) + "x.toml": x},
		"file and folder":  {"a": x, "a/b": x},
		"unclean":          {"lib//x.toml": x},
		"leading dot part": {"./a.recipe.toml": x},
	}
}

// Each hostile name is a 4xx naming the problem, never a 500, and no
// answer names the data folder; dry runs and real submissions alike leave
// no staging folder behind.
func TestHostileFileNamesAreRefusedUpFront(t *testing.T) {
	cfg := agentConfig(t, "")
	a := startAgent(t, cfg, Options{})
	manifest := manifestText("", "com.example.h@1.0.0")
	for name, files := range hostileNames() {
		for _, dry := range []bool{true, false} {
			body, _ := json.Marshal(api.DeploymentRequest{Manifest: manifest, Files: files, DryRun: dry})
			status, resp := a.do(http.MethodPost, api.PathDeployments, bytes.NewReader(body))
			if status < 400 || status >= 500 {
				t.Errorf("%s (dry run %v): status %d, want a 4xx: %s", name, dry, status, resp)
				continue
			}
			e := apiError(t, resp)
			if e.Code != api.CodeInvalid {
				t.Errorf("%s: code %q, want %q", name, e.Code, api.CodeInvalid)
			}
			if !strings.Contains(e.Message, `file "`) {
				t.Errorf("%s: %q does not name the file", name, e.Message)
			}
			if strings.Contains(string(resp), cfg.DataDir) || strings.Contains(string(resp), stagingGlob) {
				t.Errorf("%s: the answer names the data folder: %s", name, resp)
			}
		}
	}
	if list, err := a.client.Deployments(t.Context(), 0); err != nil || len(list) != 0 {
		t.Fatalf("refused requests were recorded: %+v %v", list, err)
	}
	noStaging(t, cfg.DataDir)
}

// stagingGlob is the start of a staging folder's name.
const stagingGlob = ".deploy-staging-"

// noStaging fails when a staging folder is left in the data folder.
func noStaging(t *testing.T, dataDir string) {
	t.Helper()
	if left, _ := filepath.Glob(filepath.Join(dataDir, stagingGlob+"*")); len(left) > 0 {
		t.Fatalf("staging folders left behind: %v", left)
	}
}

// Ten dry runs that fail leave no staging folder, and neither do ten that
// pass: the staging folder goes on every path.
func TestDryRunsLeaveNoStaging(t *testing.T) {
	cfg := agentConfig(t, "")
	a := startAgent(t, cfg, Options{})
	good := api.DeploymentRequest{
		Manifest: manifestText("", "com.example.s@1.0.0"),
		Files:    map[string][]byte{"com.example.s.recipe.toml": []byte(recipeText("com.example.s", "1.0.0", "exec sleep 1000"))},
		DryRun:   true,
	}
	bad := good
	bad.Files = map[string][]byte{".": []byte("eA=="), "com.example.s.recipe.toml": good.Files["com.example.s.recipe.toml"]}
	for i := 0; i < 10; i++ {
		if status, resp := a.do(http.MethodPost, api.PathDeployments, jsonBody(t, bad)); status/100 != 4 {
			t.Fatalf("bad dry run %d: %d %s", i, status, resp)
		}
		if status, resp := a.do(http.MethodPost, api.PathDeployments, jsonBody(t, good)); status != http.StatusOK {
			t.Fatalf("good dry run %d: %d %s", i, status, resp)
		}
	}
	noStaging(t, cfg.DataDir)
}

// A recipe's problems that name staged files (a missing import, an import
// cycle) name them as the request did, not where the agent staged them.
func TestStagedPathsNeverReachTheClient(t *testing.T) {
	cfg := agentConfig(t, "")
	a := startAgent(t, cfg, Options{})
	text := "imports = [\"lib/missing.toml\", \"lib/loop.toml\"]\n" + recipeText("com.example.i", "1.0.0", "exec sleep 1000")
	req := api.DeploymentRequest{
		Manifest: manifestText("", "com.example.i@1.0.0"),
		Files: map[string][]byte{
			"com.example.i.recipe.toml": []byte(text),
			"lib/loop.toml":             []byte("imports = [\"loop.toml\"]\n"),
		},
		DryRun: true,
	}
	status, resp := a.do(http.MethodPost, api.PathDeployments, jsonBody(t, req))
	if status != http.StatusUnprocessableEntity {
		t.Fatalf("status %d, want 422: %s", status, resp)
	}
	if !bytes.Contains(resp, []byte("lib/missing.toml")) || !bytes.Contains(resp, []byte("cycle")) {
		t.Fatalf("the problems are not named: %s", resp)
	}
	if bytes.Contains(resp, []byte(cfg.DataDir)) || bytes.Contains(resp, []byte(stagingGlob)) {
		t.Fatalf("the answer names where the agent staged the files: %s", resp)
	}
	noStaging(t, cfg.DataDir)
}

// A body must be declared JSON: another type, or a body with none, is 415
// in the API's JSON error shape; parameters such as charset=utf-8 are
// fine, and a POST without a body needs no type.
func TestContentTypeIsChecked(t *testing.T) {
	a := startAgent(t, agentConfig(t, ""), Options{})
	send := func(ct string, body []byte) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, "http://agent"+api.PathDeployments, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body == nil {
			req.Body, req.ContentLength = http.NoBody, 0
		}
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := a.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.Bytes()
	}
	body := []byte(`{"manifest":"format = 1"}`)
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin1", "application/jsonx", "bogus;;"} {
		status, resp := send(ct, body)
		if status != http.StatusUnsupportedMediaType {
			t.Errorf("Content-Type %q: status %d, want 415: %s", ct, status, resp)
			continue
		}
		if e := apiError(t, resp); e.Code != api.CodeBadRequest || !strings.Contains(e.Message, "application/json") {
			t.Errorf("Content-Type %q: %+v", ct, e)
		}
	}
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON;Charset=UTF-8"} {
		if status, resp := send(ct, body); status == http.StatusUnsupportedMediaType {
			t.Errorf("Content-Type %q refused: %s", ct, resp)
		}
	}
	// No body, no type: the endpoint answers (nothing to roll back).
	req, _ := http.NewRequest(http.MethodPost, "http://agent"+api.PathRollback, nil)
	resp, err := a.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusUnsupportedMediaType {
		t.Errorf("a body-less POST was refused for its missing type")
	}
	// keystonectl's client declares its bodies: a dry run through it works.
	if _, err := a.client.Deploy(t.Context(), api.DeploymentRequest{Manifest: "format = 1\n", DryRun: true}); err != nil {
		t.Errorf("the client's request was refused: %v", err)
	}
}

// Headers past the API's limit get a JSON 431 up to what the HTTP server
// reads (far above it); past that, the server's own plain-text 431, which
// the client still turns into a clear error with the right code.
func TestOversizeHeaders(t *testing.T) {
	a := startAgent(t, agentConfig(t, ""), Options{})
	req, _ := http.NewRequest(http.MethodGet, "http://agent"+api.PathComponents, nil)
	req.Header.Set("X-Padding", strings.Repeat("p", api.MaxHeaderBytes+1))
	resp, err := a.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d, want 431: %s", resp.StatusCode, b.Bytes())
	}
	if e := apiError(t, b.Bytes()); e.Code != api.CodeTooLarge {
		t.Fatalf("code %q, want %q", e.Code, api.CodeTooLarge)
	}

	// Within the limit is fine.
	req.Header.Set("X-Padding", strings.Repeat("p", api.MaxHeaderBytes/2))
	if resp, err := a.http.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("a header within the limit: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

// A malformed request line never reaches a handler: net/http answers it
// with a plain-text 400 itself, as docs/operations.md says; the client's
// handling of such answers is tested in agent/api. The agent serves on.
func TestMalformedRequestLineIsNetHTTPs400(t *testing.T) {
	a := startAgent(t, agentConfig(t, ""), Options{})
	conn, err := net.Dial("unix", a.cfg.API.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /v1/components HTTP/1.1 extra\r\nHost: a\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	_, _ = b.ReadFrom(conn)
	if !strings.HasPrefix(b.String(), "HTTP/1.1 400 ") || strings.Contains(b.String(), api.ContentJSON) {
		t.Fatalf("answer %q, want net/http's plain-text 400 (if this is JSON now, update docs/operations.md)", b.String())
	}
	if _, err := os.Stat(a.cfg.API.Socket); err != nil {
		t.Fatalf("the agent's socket after a malformed request: %v", err)
	}
}
