package supervisor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/internal/transcript"
	"github.com/keystone-edge/keystone/recipes"
	"github.com/looplab/fsm"
)

// TestCoreScenarios runs the scripts in testdata/core_*.txt: each block is
// a command and the exact transcript the core must give back (transitions
// and effects); -rewrite writes them again. Model: etcd raft's interaction
// tests.
func TestCoreScenarios(t *testing.T) {
	transcript.RunFiles(t, "testdata/core_*.txt", func(t *testing.T) func(string) string {
		env := &scenarioEnv{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		return func(cmd string) string { return env.do(t, cmd) }
	})
}

type scenarioEnv struct {
	core *Core
	now  time.Time
	run  uint64
	gens [numTimers]uint64
}

func kv(args []string) map[string]string {
	m := map[string]string{}
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		m[k] = v
	}
	return m
}

func dur(t *testing.T, s string) time.Duration {
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (e *scenarioEnv) do(t *testing.T, cmdline string) string {
	f := strings.Fields(cmdline)
	cmd, args := f[0], f[1:]
	rest := strings.Join(args, " ")
	in := Input{At: e.now}
	switch cmd {
	case "config":
		a := kv(args)
		count, _ := strconv.Atoi(a["count"])
		cfg := CoreConfig{Policy: RestartPolicy{
			Mode: recipes.RestartPolicy(a["policy"]), Initial: dur(t, a["initial"]), Max: dur(t, a["max"]),
			Count: count, Window: dur(t, a["window"]), StableRun: dur(t, a["stable"]),
			BrokenRetry: dur(t, a["broken_retry"]),
		}, Runs: a["runs"] == "true"}
		if a["health"] != "" {
			th, _ := strconv.Atoi(a["threshold"])
			cfg.Health = &recipes.Health{Check: "cmd:true", Interval: recipes.Duration{Duration: dur(t, a["health"])},
				StartPeriod: recipes.Duration{Duration: dur(t, a["start"])}, FailureThreshold: th}
		}
		e.core = NewCore(cfg)
		return "ok\n"
	case "tick":
		e.now = e.now.Add(dur(t, rest))
		return "now +" + e.now.Sub(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)).String() + "\n"
	case "status":
		s := e.core.Status()
		return fmt.Sprintf("state=%s pid=%d restarts=%d health=%q last_error=%q failure=%s gen=%d\n",
			s.State, s.Pid, s.Restarts, s.Health, s.LastError, s.Failure, s.Generation)
	case "install":
		in.Kind = InputInstall
	case "installed":
		in.Kind = InputInstalled
		if rest != "" {
			in.Err = errors.New(rest)
		}
	case "start":
		in.Kind, in.Reason = InputStart, rest
	case "stop":
		in.Kind, in.Reason = InputStop, rest
	case "dep-stop": // a stop because a hard dependency is not ready
		in.Kind, in.Reason, in.Dependency = InputStop, rest, true
	case "restart":
		in.Kind, in.Reason = InputRestart, rest
	case "launched":
		pid, _ := strconv.Atoi(kv(args)["pid"])
		in.Kind, in.Pid, in.Gen = InputLaunched, pid, e.run
	case "launch-failed":
		in.Kind, in.Err, in.Gen = InputLaunchFailed, errors.New(rest), e.run
	case "exit":
		a := kv(args)
		code, _ := strconv.Atoi(a["code"])
		in.Kind, in.Gen = InputExited, e.run
		in.Exit = ExitStatus{Code: code, Signal: a["signal"], OOM: a["oom"] == "true"}
		if in.Exit.Signal != "" {
			in.Exit.Code = -1
		}
	case "fire":
		tk := map[string]TimerKind{"restart": TimerRestart, "probe": TimerProbe, "broken-retry": TimerBrokenRetry}[rest]
		in.Kind, in.Timer, in.Gen = InputTimer, tk, e.gens[tk]
	case "ran": // a plugin's run ended: ran ok | ran fail DETAIL
		ok, detail, _ := strings.Cut(rest, " ")
		in.Kind, in.Healthy, in.Detail, in.Gen = InputRan, ok == "ok", detail, e.run
	case "health":
		ok, detail, _ := strings.Cut(rest, " ")
		in.Kind, in.Healthy, in.Detail, in.Gen = InputHealth, ok == "ok", detail, e.gens[TimerProbe]
	default:
		t.Fatalf("unknown scenario command %q", cmd)
	}
	effects, err := e.core.Step(context.Background(), in)
	var b strings.Builder
	for _, ef := range effects {
		switch ef.Kind {
		case EffectTransition:
			fmt.Fprintf(&b, "%s -> %s: %s\n", ef.Transition.From, ef.Transition.To, ef.Transition.Reason)
		case EffectLaunch:
			e.run = ef.Gen
			fmt.Fprintf(&b, "launch run %d\n", ef.Gen)
		case EffectArm:
			e.gens[ef.Timer] = ef.Gen
			fmt.Fprintf(&b, "arm %s %s\n", ef.Timer, ef.Delay)
		case EffectDisarm:
			fmt.Fprintf(&b, "disarm %s\n", ef.Timer)
		case EffectStop:
			fmt.Fprintf(&b, "stop process: %s\n", ef.Reason)
		default:
			fmt.Fprintf(&b, "%s\n", ef.Kind)
		}
	}
	if err != nil {
		fmt.Fprintf(&b, "error: %v\n", err)
	}
	if b.Len() == 0 {
		return "(nothing)\n"
	}
	return b.String()
}

// A command the state does not allow is ErrIllegal, naming the command and
// the state; looplab/fsm's error type does not leak out.
func TestIllegalCommandIsErrIllegal(t *testing.T) {
	c := NewCore(CoreConfig{Policy: PolicyFor(nil)})
	ctx := context.Background()
	for _, tc := range []struct {
		in   Input
		want string
	}{
		{Input{Kind: InputStart}, "start not possible in state NEW"},
		{Input{Kind: InputRestart}, "restart not possible in state NEW"},
	} {
		_, err := c.Step(ctx, tc.in)
		if !errors.Is(err, ErrIllegal) || err.Error() != tc.want {
			t.Errorf("%v in NEW: %v, want %q wrapping ErrIllegal", tc.in.Kind, err, tc.want)
		}
		var fsmErr fsm.InvalidEventError
		if errors.As(err, &fsmErr) {
			t.Errorf("%v in NEW: looplab/fsm's error leaks: %v", tc.in.Kind, err)
		}
	}
	// Through the machine itself: a start of a RUNNING component.
	c.Step(ctx, Input{Kind: InputInstall})
	c.Step(ctx, Input{Kind: InputInstalled})
	c.Step(ctx, Input{Kind: InputStart})
	c.Step(ctx, Input{Kind: InputLaunched, Gen: 1, Pid: 7})
	if _, err := c.Step(ctx, Input{Kind: InputStart}); !errors.Is(err, ErrIllegal) || err.Error() != "start not possible in state RUNNING" {
		t.Errorf("start in RUNNING: %v", err)
	}
}
