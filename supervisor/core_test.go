package supervisor

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/recipes"
)

var rewrite = flag.Bool("rewrite", false, "rewrite testdata/*.txt transcripts with the actual output")

// TestCoreScenarios runs the scripts in testdata/core_*.txt. Each block is a
// command line, a "----" line and the exact transcript the core must give
// back (transitions and effects), ended by a blank line. Model: etcd raft's
// interaction tests.
func TestCoreScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/core_*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			runScenario(t, file)
		})
	}
}

type scenarioBlock struct {
	comments []string
	cmd      string
	want     string
	line     int
}

func parseScenario(t *testing.T, file string) []scenarioBlock {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []scenarioBlock
	var cur *scenarioBlock
	inOut := false
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		switch {
		case cur == nil && (strings.HasPrefix(line, "#") || strings.TrimSpace(line) == ""):
			if strings.HasPrefix(line, "#") {
				blocks = append(blocks, scenarioBlock{comments: []string{line}})
			}
		case cur == nil:
			cur = &scenarioBlock{cmd: line, line: n}
		case !inOut && line == "----":
			inOut = true
		case inOut && strings.TrimSpace(line) == "":
			blocks = append(blocks, *cur)
			cur, inOut = nil, false
		case inOut:
			cur.want += line + "\n"
		default:
			t.Fatalf("%s:%d: expected ---- after the command", file, n)
		}
	}
	if cur != nil {
		blocks = append(blocks, *cur)
	}
	return blocks
}

func runScenario(t *testing.T, file string) {
	blocks := parseScenario(t, file)
	env := &scenarioEnv{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	var rewritten strings.Builder
	for _, b := range blocks {
		if b.cmd == "" {
			rewritten.WriteString(strings.Join(b.comments, "\n") + "\n")
			continue
		}
		got := env.do(t, b.cmd)
		fmt.Fprintf(&rewritten, "%s\n----\n%s\n", b.cmd, got)
		if *rewrite {
			continue
		}
		if got != b.want {
			t.Errorf("%s:%d: %s\ngot:\n%swant:\n%s", file, b.line, b.cmd, got, b.want)
		}
	}
	if *rewrite {
		if err := os.WriteFile(file, []byte(rewritten.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
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
		}}
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
		return fmt.Sprintf("state=%s pid=%d restarts=%d health=%q last_error=%q\n", s.State, s.Pid, s.Restarts, s.Health, s.LastError)
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
		in.Exit = ExitStatus{Code: code, Signal: a["signal"]}
		if in.Exit.Signal != "" {
			in.Exit.Code = -1
		}
	case "fire":
		tk := map[string]TimerKind{"restart": TimerRestart, "probe": TimerProbe}[rest]
		in.Kind, in.Timer, in.Gen = InputTimer, tk, e.gens[tk]
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
