package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os/user"
	"strings"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/recipes"
)

// echoScript prints counters, a gauge and a histogram, reports how it was
// run (uid, no_new_privs, whether the secret leaked into its environment)
// and returns the context it read as its state.
const echoScript = `input=$(cat)
uid=$(id -u)
nnp=$(awk '/^NoNewPrivs:/ {print $2}' /proc/self/status)
leak=0
env | grep -q s3cr3t && leak=1
printf '{"metrics":[{"name":"tx","type":"counter","value":1234,"help":"POS transactions","labels":{"pos":"12"}},'
printf '{"name":"queue_len","type":"gauge","value":3},'
printf '{"name":"latency_seconds","type":"histogram","buckets":{"0.1":4,"0.5":9,"+Inf":10},"sum":2.7,"count":10},'
printf '{"name":"uid","type":"gauge","value":%s},{"name":"no_new_privs","type":"gauge","value":%s},' "$uid" "$nnp"
printf '{"name":"secret_in_env","type":"gauge","value":%s}],' "$leak"
printf '"state":%s}\n' "$input"
echo "note on stderr" >&2
`

func TestExecPluginRunsConfinedAndMapsItsOutput(t *testing.T) {
	r, lm := newRunner(t)
	vdir := openDir(t)
	writeScript(t, vdir, "collect.sh", echoScript)
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("the host needs a nobody account for run_as: %v", err)
	}
	rec := pluginRecipe("com.example.pos", recipes.Plugin{
		Runtime: "exec", Command: "collect.sh", Timeout: dur(20 * time.Second),
		Mapping: recipes.Mapping{Prefix: "pos_", Labels: map[string]string{"store_id": "kyiv-001"},
			Rename: map[string]string{"tx": "transactions_total"}},
	})
	rec.Security.RunAs = "nobody"
	p := newPlugin(t, Config{
		Recipe: rec, VersionDir: vdir, WorkDir: vdir, DeviceID: "pos-12", Runner: r,
		Config:  map[string]any{"store_id": "kyiv-001"},
		Secrets: map[string]string{"DB_PASS": "s3cr3t"},
	})
	res, err := p.Run(context.Background(), json.RawMessage(`{"last_offset":1234}`))
	if err != nil {
		t.Fatal(err)
	}
	tx := byName(t, res.Metrics, "pos_transactions_total", "", "")
	if tx.Type != Counter || tx.Value != 1234 || tx.Labels["pos"] != "12" || tx.Labels["store_id"] != "kyiv-001" || tx.Help != "POS transactions" {
		t.Errorf("tx = %+v", tx)
	}
	if q := byName(t, res.Metrics, "pos_queue_len", "", ""); q.Type != Gauge || q.Value != 3 {
		t.Errorf("queue_len = %+v", q)
	}
	h := byName(t, res.Metrics, "pos_latency_seconds", "", "")
	if h.Type != Histogram || h.Count != 10 || h.Sum != 2.7 || len(h.Buckets) != 3 || !math.IsInf(h.Buckets[2].UpperBound, 1) {
		t.Errorf("histogram = %+v", h)
	}
	if uid := byName(t, res.Metrics, "pos_uid", "", "").Value; uid != atof(t, nobody.Uid) {
		t.Errorf("ran as uid %v, want nobody (%s)", uid, nobody.Uid)
	}
	if v := byName(t, res.Metrics, "pos_no_new_privs", "", "").Value; v != 1 {
		t.Errorf("NoNewPrivs = %v, want 1 (the default)", v)
	}
	if v := byName(t, res.Metrics, "pos_secret_in_env", "", "").Value; v != 0 {
		t.Error("the secret reached the plugin's environment; it belongs in ctx.secrets only")
	}
	var ctxDoc map[string]any
	if err := json.Unmarshal(res.State, &ctxDoc); err != nil || !res.HasState {
		t.Fatalf("state %s: %v", res.State, err)
	}
	want := map[string]string{
		"component": "com.example.pos", "version": "1.0.0", "device_id": "pos-12",
		"config": `map[store_id:kyiv-001]`, "state": `map[last_offset:1234]`, "secrets": `map[DB_PASS:s3cr3t]`,
	}
	for k, v := range want {
		if got := fmtAny(ctxDoc[k]); got != v {
			t.Errorf("ctx.%s = %s, want %s", k, got, v)
		}
	}
	if res.Stderr != "note on stderr" {
		t.Errorf("stderr tail = %q", res.Stderr)
	}
	l, _ := lm.Log("com.example.pos")
	if tail := l.Tail(0); len(tail) != 1 || tail[0].String() != "[stderr] note on stderr" {
		t.Errorf("component log = %v, want the stderr line only (stdout is the result)", tail)
	}
}

func TestExecPluginFailuresAreWholeAndClear(t *testing.T) {
	r, _ := newRunner(t)
	vdir := openDir(t)
	cases := []struct {
		name, script string
		timeout      time.Duration
		maxOutput    int
		is           error
		want         []string
	}{
		{name: "bad JSON", script: `echo 'load=0.5'`, is: ErrInvalidOutput, want: []string{"bad JSON"}},
		{name: "bad name", script: `echo '{"metrics":[{"name":"ok","type":"gauge","value":1},{"name":"tx count","type":"gauge","value":1}]}'`,
			is: ErrInvalidOutput, want: []string{`name "tx count" is not a valid Prometheus metric name`}},
		{name: "NaN", script: `echo '{"metrics":[{"name":"a","type":"gauge","value":NaN}]}'`,
			is: ErrInvalidOutput, want: []string{"NaN at byte", "finite"}},
		{name: "negative counter", script: `echo '{"metrics":[{"name":"a","type":"counter","value":-3}]}'`,
			is: ErrInvalidOutput, want: []string{"counter value -3 is negative"}},
		{name: "non-monotone buckets", script: `echo '{"metrics":[{"name":"h","type":"histogram","buckets":{"1":5,"2":4,"+Inf":6},"sum":3}]}'`,
			is: ErrInvalidOutput, want: []string{"not cumulative"}},
		{name: "timeout", script: `echo started >&2; exec sleep 60`, timeout: 300 * time.Millisecond,
			is: ErrTimeout, want: []string{"timed out after 300ms", "stderr: started"}},
		{name: "non-zero exit", script: `echo "db unreachable" >&2; exit 3`,
			is: ErrExit, want: []string{"exited with code 3", "stderr: db unreachable"}},
		{name: "killed", script: `kill -9 $$`, is: ErrExit, want: []string{"killed by SIGKILL"}},
		{name: "oversize", script: `while :; do echo '{"metrics":[]}                                                 '; done`,
			maxOutput: 4096, is: ErrOutputTooLarge, want: []string{"more than 4096 bytes"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := strings.ReplaceAll(tc.name, " ", "-") + ".sh"
			writeScript(t, vdir, file, tc.script)
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 20 * time.Second
			}
			p := newPlugin(t, Config{
				Recipe:     pluginRecipe("com.example.fail", recipes.Plugin{Command: file, Timeout: dur(timeout)}),
				VersionDir: vdir, Runner: r, MaxOutput: tc.maxOutput,
			})
			res, err := p.Run(context.Background(), nil)
			if err == nil {
				t.Fatalf("run succeeded: %+v", res)
			}
			if res != nil {
				t.Errorf("a failed run returned values: %+v", res)
			}
			var re *RunError
			if !errors.As(err, &re) || !errors.Is(err, tc.is) {
				t.Fatalf("error %T %v: want a *RunError wrapping %v", err, err, tc.is)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestExecPluginThatCannotStart(t *testing.T) {
	r, _ := newRunner(t)
	p := newPlugin(t, Config{
		Recipe:     pluginRecipe("com.example.missing", recipes.Plugin{Command: "nope.sh"}),
		VersionDir: openDir(t), Runner: r,
	})
	_, err := p.Run(context.Background(), nil)
	if !errors.Is(err, ErrStart) || !strings.Contains(err.Error(), "nope.sh") {
		t.Fatalf("err = %v, want ErrStart naming the command", err)
	}
}

func TestCancelledRunIsNotAPluginFailure(t *testing.T) {
	r, _ := newRunner(t)
	vdir := openDir(t)
	writeScript(t, vdir, "slow.sh", "echo go >&2; exec sleep 60")
	p := newPlugin(t, Config{
		Recipe:     pluginRecipe("com.example.slow", recipes.Plugin{Command: "slow.sh", Timeout: dur(time.Minute)}),
		VersionDir: vdir, Runner: r,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := p.Run(ctx, nil)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		var re *RunError
		if !errors.Is(err, context.Canceled) || errors.As(err, &re) {
			t.Fatalf("err = %v, want context.Canceled and no *RunError", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a cancelled run did not return")
	}
}

func atof(t testing.TB, s string) float64 {
	t.Helper()
	var f float64
	if err := json.Unmarshal([]byte(s), &f); err != nil {
		t.Fatal(err)
	}
	return f
}

func fmtAny(v any) string {
	if v == nil {
		return "null"
	}
	return fmt.Sprint(v)
}
