package deploy

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/internal/transcript"
)

// TestCoreScenarios runs the scripts in testdata/core_*.txt against the
// decision core, in the supervisor's transcript format (-rewrite writes
// them again). Commands:
//
//	config [keep] [prev=empty]   a new core: failure_policy keep; nothing ran before
//	begin [broken]               its turn came; broken: its set no longer builds
//	resume [broken] STEP:STATUS[:CODE]...  the agent restarted at these checkpoints
//	done                         the operation asked for succeeded
//	fail CODE message...         it failed
//	cancel reason...             deploy cancel
//	preempt ID                   a newer deployment preempts it
func TestCoreScenarios(t *testing.T) {
	transcript.RunFiles(t, "testdata/core_*.txt", func(t *testing.T) func(string) string {
		env := &coreEnv{t: t}
		return env.do
	})
}

type coreEnv struct {
	t *testing.T
	c *core
}

func (e *coreEnv) do(cmdline string) string {
	f := strings.Fields(cmdline)
	cmd, args := f[0], f[1:]
	rest := strings.Join(args, " ")
	var ev event
	switch cmd {
	case "config":
		cfg := coreConfig{stopNew: 40 * time.Second, stopPrev: 35 * time.Second,
			waitNew: 25 * time.Second, waitPrev: 20 * time.Second}
		for _, a := range args {
			cfg.keep = cfg.keep || a == "keep"
			cfg.prevEmpty = cfg.prevEmpty || a == "prev=empty"
		}
		e.c = newCore(cfg)
		return "ok\n"
	case "begin", "resume":
		ev.kind = eventBegin
		if cmd == "resume" {
			ev.kind = eventResume
		}
		for _, a := range args {
			if a == "broken" {
				ev.failure = fail(CodeValidation, "rebuild deployment: recipe com.example.a: no longer valid")
				continue
			}
			ev.steps = append(ev.steps, recordedStep(a))
		}
	case "done":
		ev.kind = eventDone
	case "fail":
		code, msg, _ := strings.Cut(rest, " ")
		ev.kind, ev.failure = eventFailed, &failure{code: Code(code), err: errors.New(msg)}
	case "cancel":
		ev.kind, ev.reason = eventCancel, rest
	case "preempt":
		ev.kind, ev.by = eventPreempt, rest
	default:
		e.t.Fatalf("unknown command %q", cmd)
	}
	var b strings.Builder
	for _, ef := range e.c.Step(ev) {
		fmt.Fprintln(&b, ef)
	}
	if e.c.over() {
		b.WriteString("over\n")
	}
	if b.Len() == 0 {
		return "(nothing)\n"
	}
	return b.String()
}

// recordedStep reads "start:failed:COMPONENT_FAILED" as the checkpoint the
// executor would have recorded.
func recordedStep(s string) Step {
	parts := strings.SplitN(s, ":", 3)
	st := Step{Name: StepName(parts[0]), Status: StepStatus(parts[1])}
	if len(parts) == 3 {
		st.Detail = failureDetail(fail(Code(parts[2]), "recorded before the restart"))
	}
	return st
}

// String is the effect as the transcripts show it.
func (ef effect) String() string {
	var s string
	switch ef.kind {
	case effectStatus:
		s = "record status " + string(ef.status)
	case effectStep:
		s = "record " + checkpoint(ef.step, ef.stepStatus)
	case effectFetch:
		s = "fetch"
	case effectPlan:
		s = "record plan"
	case effectApply:
		s = fmt.Sprintf("apply %s within %s", [...]string{"new", "previous"}[ef.target], ef.within)
	case effectWait:
		s = fmt.Sprintf("wait %s within %s", [...]string{"new", "previous"}[ef.target], ef.within)
	case effectSettle:
		s = "settle kept"
	case effectCommit:
		s = "commit"
	case effectKeep:
		s = "keep FAILED"
	case effectRollback:
		s = fmt.Sprintf("rollback %s rolled_back=%v", ef.status, ef.rolledBack)
		if ef.note != "" {
			s += " note:" + strings.TrimPrefix(ef.note, ";")
		}
	case effectFinish:
		s = "finish untouched " + string(ef.status)
	}
	if ef.failure != nil {
		s += " (" + failureDetail(ef.failure) + ")"
	}
	return s
}
