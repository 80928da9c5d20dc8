package selfupdate

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/internal/transcript"
)

// TestCoreScenarios runs testdata/*.txt: each line of input is an event,
// the output the actions and the record's phase after it. Commands:
//
//	request VERSION running=V [timeout=D]
//	installed VERSION running=V [timeout=D]
//	staged | stage-failed ERR | booted RUNNING [exec-failed=ERR] | healthy
//	advance D (then a tick)
//	state
func TestCoreScenarios(t *testing.T) {
	transcript.RunFiles(t, "testdata/*.txt", func(t *testing.T) func(string) string {
		var s State
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		return func(cmd string) string {
			f := strings.Fields(cmd)
			opts := map[string]string{}
			var args []string
			for _, a := range f[1:] {
				if k, v, ok := strings.Cut(a, "="); ok {
					opts[k] = v
				} else {
					args = append(args, a)
				}
			}
			ev := Event{At: now}
			switch f[0] {
			case "request":
				ev.Kind, ev.ID, ev.Version, ev.Running = Request, "u1", args[0], opts["running"]
				ev.Exe = "/opt/keystone/releases/" + opts["running"] + "/keystone-agent"
				if d, ok := opts["timeout"]; ok {
					ev.Timeout, _ = time.ParseDuration(d)
				}
			case "installed":
				ev.Kind, ev.ID, ev.Version, ev.Running = Installed, "reload-1", args[0], opts["running"]
				ev.Exe = "/opt/keystone/releases/" + args[0] + "/keystone-agent"
				ev.FromExe = "/opt/keystone/releases/" + opts["running"] + "/keystone-agent"
				if d, ok := opts["timeout"]; ok {
					ev.Timeout, _ = time.ParseDuration(d)
				}
			case "staged":
				ev.Kind, ev.Exe = Staged, "/opt/keystone/releases/"+s.To+"/keystone-agent"
			case "stage-failed":
				ev.Kind, ev.Err, ev.Code = StageFailed, strings.Join(args, " "), "DOWNLOAD_FAILED"
			case "booted":
				ev.Kind, ev.Running, ev.Err = Booted, args[0], opts["exec-failed"]
			case "healthy":
				ev.Kind = Healthy
			case "advance":
				d, err := time.ParseDuration(args[0])
				if err != nil {
					t.Fatal(err)
				}
				now = now.Add(d)
				ev.Kind, ev.At = Tick, now
			case "state":
				return describe(s)
			default:
				t.Fatalf("unknown command %q", cmd)
			}
			next, acts := Step(s, ev)
			s = next
			var b strings.Builder
			for _, a := range acts {
				switch a.Kind {
				case Save:
					fmt.Fprintf(&b, "save %s\n", s.Phase)
				case Report:
					fmt.Fprintf(&b, "report %s rolled_back=%v code=%q: %s\n", s.Phase, s.RolledBack, s.Code, s.Detail)
				case Fetch, SwitchCurrent:
					fmt.Fprintf(&b, "%s %s\n", a.Kind, a.Version)
				case Exec:
					fmt.Fprintf(&b, "exec %s\n", a.Exe)
				case Refuse:
					fmt.Fprintf(&b, "refuse: %s\n", a.Err)
				default:
					fmt.Fprintf(&b, "%s\n", a.Kind)
				}
			}
			if b.Len() == 0 {
				return "nothing\n"
			}
			return b.String()
		}
	})
}

func describe(s State) string {
	return fmt.Sprintf("phase=%s from=%s to=%s tries=%d deadline=%s rolled_back=%v\n",
		s.Phase, s.From, s.To, s.Tries, s.Deadline.Format(time.TimeOnly), s.RolledBack)
}
