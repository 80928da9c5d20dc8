package fleet

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/comms/message"
	"github.com/keystone-edge/keystone/internal/transcript"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// TestRolloutScenarios runs the scripts in testdata/rollout_*.txt: each
// block is a command and the exact actions the core gives back; -rewrite
// writes them again. Commands:
//
//	start [id=r1] devices=d1..d20 [rings=10%,50%,100%] [rate=600/m] [soak=2m]
//	      [timeout=30m] [max-failure=10%] [min-executed=5] [on-halt=rollback]
//	      [offline=d5,d7] [previous=all|none|d1,d2] [kind=agent_update]
//	      (every device's state comes first: online and healthy unless offline)
//	tick DURATION
//	status DEVICE STATUS [code=CODE] [job=rollback|cancel|ID] [detail words…]
//	state DEVICE online healthy|unhealthy | state DEVICE offline
//	pause [reason] · resume · cancel [reason]
//	restart   (the state goes through JSON into a new core, then EventRestart)
//	show      (the Summary)
//
// Every job published is checked: a device never gets a second job id or
// different content for its rollout job.
func TestRolloutScenarios(t *testing.T) {
	transcript.RunFiles(t, "testdata/rollout_*.txt", func(t *testing.T) func(string) string {
		env := &rolloutEnv{t: t, now: epoch, jobs: map[string]string{}}
		return env.do
	})
}

type rolloutEnv struct {
	t    *testing.T
	core *Core
	now  time.Time
	jobs map[string]string // device → its rollout job's JSON, as first published
}

// devices expands "d1..d3" or "a,b,c".
func devices(t *testing.T, s string) []string {
	if s == "" || s == "none" {
		return nil
	}
	if from, to, ok := strings.Cut(s, ".."); ok {
		i := strings.IndexAny(from, "0123456789")
		lo, err1 := strconv.Atoi(from[i:])
		hi, err2 := strconv.Atoi(strings.TrimPrefix(to, from[:i]))
		if err1 != nil || err2 != nil {
			t.Fatalf("bad device range %q", s)
		}
		var out []string
		for n := lo; n <= hi; n++ {
			out = append(out, fmt.Sprintf("%s%d", from[:i], n))
		}
		return out
	}
	return strings.Split(s, ",")
}

func percent(t *testing.T, s string) float64 {
	f, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err != nil {
		t.Fatalf("bad percentage %q", s)
	}
	return f / 100
}

func duration(t *testing.T, s string) time.Duration {
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (e *rolloutEnv) do(cmdline string) string {
	t := e.t
	f := strings.Fields(cmdline)
	cmd, args := f[0], f[1:]
	ev := Event{At: e.now}
	var b strings.Builder
	switch cmd {
	case "start":
		a := map[string]string{"id": "r1", "previous": "all", "kind": message.KindDeployment}
		for _, arg := range args {
			k, v, _ := strings.Cut(arg, "=")
			a[k] = v
		}
		cfg := Config{ID: a["id"], Targets: devices(t, a["devices"]), Soak: duration(t, a["soak"]),
			DeviceTimeout: duration(t, a["timeout"]), OnHalt: HaltPolicy(a["on-halt"]),
			Job: Template{Kind: a["kind"], Manifest: "manifest v2", Version: "2.0.0"}}
		if cfg.Job.Kind == message.KindAgentUpdate {
			cfg.Job.Manifest = ""
		}
		if a["rings"] != "" {
			for _, r := range strings.Split(a["rings"], ",") {
				cfg.Rings = append(cfg.Rings, percent(t, r))
			}
		}
		if a["rate"] != "" {
			cfg.Rate, _ = strconv.Atoi(strings.TrimSuffix(a["rate"], "/m"))
		}
		if a["max-failure"] != "" {
			cfg.MaxFailureRate = percent(t, a["max-failure"])
		}
		cfg.MinExecuted, _ = strconv.Atoi(a["min-executed"])
		prev := a["previous"]
		if prev == "all" {
			prev = a["devices"]
		}
		cfg.Previous = map[string]Template{}
		for _, d := range devices(t, prev) {
			cfg.Previous[d] = Template{Kind: cfg.Job.Kind, Manifest: "manifest v1 of " + d, Version: "1.0.0"}
		}
		core, err := New(cfg)
		if err != nil {
			return "error: " + err.Error() + "\n"
		}
		e.core, e.jobs = core, map[string]string{}
		offline := map[string]bool{}
		for _, d := range devices(t, a["offline"]) {
			offline[d] = true
		}
		for _, d := range cfg.Targets {
			e.step(Event{Kind: EventDeviceState, At: e.now, Device: d, Online: !offline[d], Healthy: !offline[d]})
		}
		for k := range core.Snapshot().Config.Rings {
			var ids []string
			for _, d := range core.Devices() {
				if d.Ring == k {
					ids = append(ids, d.ID)
				}
			}
			fmt.Fprintf(&b, "ring %d: %s\n", k, strings.Join(ids, " "))
		}
		ev.Kind = EventStart
	case "tick":
		e.now = e.now.Add(duration(t, args[0]))
		fmt.Fprintf(&b, "now +%s\n", e.now.Sub(epoch))
		ev.Kind, ev.At = EventTick, e.now
	case "status":
		ev.Kind, ev.Device, ev.Status = EventJobStatus, args[0], args[1]
		ev.JobID = e.core.Snapshot().Config.ID + "-" + args[0]
		var detail []string
		for _, arg := range args[2:] {
			switch k, v, _ := strings.Cut(arg, "="); k {
			case "code":
				ev.ErrorCode = v
			case "job":
				switch v {
				case "rollback", "cancel":
					ev.JobID += "-" + v
				default:
					ev.JobID = v
				}
			default:
				detail = append(detail, arg)
			}
		}
		ev.Detail = strings.Join(detail, " ")
	case "state":
		ev.Kind, ev.Device = EventDeviceState, args[0]
		ev.Online = args[1] == "online"
		ev.Healthy = ev.Online && len(args) > 2 && args[2] == "healthy"
	case "pause":
		ev.Kind, ev.Reason = EventPause, strings.Join(args, " ")
	case "resume":
		ev.Kind = EventResume
	case "cancel":
		ev.Kind, ev.Reason = EventCancel, strings.Join(args, " ")
	case "restart":
		before := e.core.Devices()
		data, err := json.Marshal(e.core.Snapshot())
		if err != nil {
			t.Fatal(err)
		}
		var s State
		if err := json.Unmarshal(data, &s); err != nil {
			t.Fatal(err)
		}
		if e.core, err = Restore(s); err != nil {
			t.Fatal(err)
		}
		after := e.core.Devices()
		for i := range before {
			if before[i].ID != after[i].ID || before[i].Ring != after[i].Ring {
				t.Errorf("restart moved %s from ring %d to %s in ring %d", before[i].ID, before[i].Ring, after[i].ID, after[i].Ring)
			}
		}
		ev.Kind = EventRestart
	case "show":
		return summary(e.core.Summary())
	default:
		t.Fatalf("unknown scenario command %q", cmd)
	}
	actions, err := e.core.Step(ev)
	if err != nil {
		if !errors.Is(err, ErrIllegal) {
			t.Errorf("%s: %v does not wrap ErrIllegal", cmdline, err)
		}
		fmt.Fprintf(&b, "error: %v\n", err)
	}
	for _, a := range actions {
		b.WriteString(e.format(a))
	}
	if b.Len() == 0 {
		b.WriteString("(nothing)\n")
	}
	return b.String()
}

func (e *rolloutEnv) step(ev Event) {
	actions, err := e.core.Step(ev)
	if err != nil || len(actions) > 0 {
		e.t.Fatalf("%v: %v %v", ev.Kind, actions, err)
	}
}

func (e *rolloutEnv) format(a Action) string {
	switch a.Kind {
	case ActionPublish:
		data, _ := json.Marshal(a.Job)
		note := ""
		if first, ok := e.jobs[a.Device]; ok {
			note = " again, identical"
			if first != string(data) {
				e.t.Errorf("%s got a different job: %s, then %s", a.Device, first, data)
				note = " again, DIFFERENT"
			}
		}
		e.jobs[a.Device] = string(data)
		return fmt.Sprintf("publish %s to %s%s\n", a.Job.JobID, a.Device, note)
	case ActionCancelJob:
		return fmt.Sprintf("cancel %s on %s with %s\n", a.Job.Cancel.JobID, a.Device, a.Job.JobID)
	case ActionRollback:
		what := a.Job.AgentUpdate
		if a.Job.Deployment != nil {
			return fmt.Sprintf("rollback %s with %s: %q\n", a.Device, a.Job.JobID, a.Job.Deployment.Manifest)
		}
		return fmt.Sprintf("rollback %s with %s: agent %s\n", a.Device, a.Job.JobID, what.Version)
	case ActionNoRollback:
		return fmt.Sprintf("no rollback for %s: %s\n", a.Device, a.Reason)
	case ActionOutcome:
		s := fmt.Sprintf("%s: %s -> %s", a.Device, a.From, a.To)
		if a.ErrorCode != "" || a.Detail != "" {
			s += " (" + strings.Trim(a.ErrorCode+": "+a.Detail, ": ") + ")"
		}
		return s + "\n"
	case ActionRingStarted:
		return fmt.Sprintf("ring %d started\n", a.Ring)
	case ActionRingFinished:
		return fmt.Sprintf("ring %d finished\n", a.Ring)
	case ActionHalted:
		return fmt.Sprintf("halted: %s\n", a.Reason)
	case ActionFinished:
		return fmt.Sprintf("finished %s: %s\n", a.Phase, a.Reason)
	}
	return a.Kind.String() + "\n"
}

func counts(m map[Outcome]int) string {
	var parts []string
	for _, o := range Outcomes {
		if m[o] > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", o, m[o]))
		}
	}
	return strings.Join(parts, " ")
}

func summary(s Summary) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s ring=%d", s.ID, s.Phase, s.Ring)
	if s.Reason != "" {
		fmt.Fprintf(&b, " reason=%q", s.Reason)
	}
	fmt.Fprintf(&b, "\nall: %s\n", counts(s.Counts))
	for k, r := range s.Rings {
		fmt.Fprintf(&b, "ring %d (%g%%, %d devices): %s\n", k, r.Fraction*100, r.Devices, counts(r.Counts))
	}
	for _, f := range s.Failing {
		fmt.Fprintf(&b, "failing %s ring %d %s %s: %s", f.Device, f.Ring, f.Outcome, f.ErrorCode, f.Detail)
		if f.Late != "" {
			fmt.Fprintf(&b, " (late %s)", f.Late)
		}
		b.WriteString("\n")
	}
	return b.String()
}
