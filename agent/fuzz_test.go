package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"unicode"

	"github.com/keystone-edge/keystone/agent/api"
	"github.com/keystone-edge/keystone/supervisor/deploy"
)

// Memory one decoded request may take: a fixed allowance (buffers, the
// fuzzing machinery's own allocations meanwhile) plus a multiple of the
// input, as JSON decoding holds the body, its strings and decoded bytes.
const (
	fuzzAllocPerByte = 64
	fuzzAllocFixed   = 16 << 20
)

// FuzzDecodeDeploymentRequest feeds any body to the POST /v1/deployments
// decoder and its checks. Whatever the input: the answer is accepted, or
// refused as the client's fault (4xx) with a message that prints no raw
// control character; an accepted request has a manifest and only file
// names CheckFileNames accepts; and the call allocates at most
// fuzzAllocPerByte × len(input) + fuzzAllocFixed bytes. Total allocation
// (MemStats.TotalAlloc) counts every byte allocated, freed or not, so it
// bounds the heap the call can have needed at its peak from above.
func FuzzDecodeDeploymentRequest(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, api.PathDeployments, bytes.NewReader(body))
		r.Header.Set("Content-Type", api.ContentJSON)
		r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, api.MaxBodyBytes)

		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		dr, _, err := decodeDeploymentRequest(r)
		runtime.ReadMemStats(&after)

		if used, limit := after.TotalAlloc-before.TotalAlloc, uint64(fuzzAllocPerByte*len(body)+fuzzAllocFixed); used > limit {
			t.Fatalf("decoding %d bytes allocated %d bytes, more than %d", len(body), used, limit)
		}
		if err != nil {
			checkRefusal(t, err)
			return
		}
		if len(dr.Manifest) == 0 {
			t.Fatalf("accepted a request without a manifest: %q", body)
		}
		if err := deploy.CheckFileNames(dr.Files); err != nil {
			t.Fatalf("accepted bad file names: %v", err)
		}
	})
}

// checkRefusal fails unless err is the client's fault, shown safely.
func checkRefusal(t *testing.T, err error) {
	t.Helper()
	if status, _ := classify(err); status < 400 || status >= 500 {
		t.Fatalf("refused with status %d, want a 4xx: %v", status, err)
	}
	msg := err.Error()
	if i := strings.IndexFunc(msg, func(r rune) bool { return unicode.IsControl(r) && r != '\n' }); i >= 0 {
		t.Fatalf("the error prints a raw control character at %d: %q", i, msg)
	}
}

// fuzzSeeds are the hostile requests the agent must refuse cleanly, and a
// few it must accept.
func fuzzSeeds() [][]byte {
	body := func(files map[string]string) []byte {
		b, _ := json.Marshal(map[string]any{"manifest": "format = 1", "files": files})
		return b
	}
	many := map[string]string{}
	for i := range 500 {
		many[fmt.Sprintf("d%d/f%d.toml", i%7, i)] = "eA=="
	}
	return [][]byte{
		[]byte(`{"manifest":"format = 1","files":{".":"eA=="}}`),
		[]byte(`{"manifest":"format = 1","files":{"a\u0000b":"eA=="}}`),
		[]byte(`{"manifest":"format = 1","files":{"a\u001b[2J":"eA=="}}`),
		body(map[string]string{strings.Repeat("n", 256): "eA=="}),
		body(map[string]string{strings.Repeat("d/", 2049) + "x": "eA=="}),
		body(map[string]string{"a": "eA==", "a/b": "eA=="}),
		body(map[string]string{"../x": "", "/etc/passwd": "", "a//b": "", "./a": "", "a/": ""}),
		body(map[string]string{"a.recipe.toml": "eA==", "lib/common.toml": "eA==", "a.recipe.toml.sig": ""}),
		body(many),
		[]byte(`{"manifest":"format = 1","files":{"a":"not base64!"}}`),
		[]byte(`{"manifest":"format = 1","dry_run":true,"preempt":true}`),
		[]byte(`{"manifest":""}`),
		[]byte(`{"manifest":"x","surprise":1}`),
		[]byte(`{"manifest":"x"} {}`),
		[]byte(`{"manifest":` + strings.Repeat("[", 2000) + strings.Repeat("]", 2000) + `}`),
		[]byte(`{"files":{"\ud800":"eA=="},"manifest":"\xff"}`),
		[]byte(``),
		[]byte(`null`),
	}
}
