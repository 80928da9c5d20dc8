package supervisor

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/internal/fakeclock"
	"github.com/keystone-edge/keystone/recipes"
)

// healthTarget is something a health check looks at, which the test makes
// pass or fail.
type healthTarget struct {
	check string
	set   func(healthy bool)
}

func httpTarget(t *testing.T) healthTarget {
	var ok atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !ok.Load() {
			http.Error(w, "not ready", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return healthTarget{check: srv.URL + "/healthz", set: ok.Store}
}

func tcpTarget(t *testing.T) healthTarget {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	var mu sync.Mutex
	var wg sync.WaitGroup
	serve := func(l net.Listener) {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}
	wg.Add(1)
	go serve(l)
	cur := l
	t.Cleanup(func() {
		mu.Lock()
		if cur != nil {
			cur.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return healthTarget{check: "tcp://" + addr, set: func(healthy bool) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case healthy && cur == nil:
			nl, err := net.Listen("tcp", addr)
			if err != nil {
				t.Errorf("listen again on %s: %v", addr, err)
				return
			}
			cur = nl
			wg.Add(1)
			go serve(nl)
		case !healthy && cur != nil:
			cur.Close()
			cur = nil
		}
	}}
}

func cmdTarget(t *testing.T) healthTarget {
	flag := filepath.Join(t.TempDir(), "healthy")
	return healthTarget{check: "cmd:test -f " + flag, set: func(healthy bool) {
		if healthy {
			if err := os.WriteFile(flag, nil, 0o644); err != nil {
				t.Error(err)
			}
		} else {
			os.Remove(flag)
		}
	}}
}

// Acceptance 2: a service whose check starts failing goes DEGRADED, is
// restarted at the threshold and returns to RUNNING; failures within
// start_period do not count; the same for http, tcp and cmd checks.
func TestHealthChecks(t *testing.T) {
	for name, mk := range map[string]func(*testing.T) healthTarget{
		"http": httpTarget, "tcp": tcpTarget, "cmd": cmdTarget,
	} {
		t.Run(name, func(t *testing.T) {
			target := mk(t)
			target.set(false)
			clock := fakeclock.New(time.Time{})
			r := newRig(t, clock, Config{})
			c := proc("com.example.svc", "exec sleep 1000", func(rc *recipes.Recipe) {
				rc.Lifecycle.Run.RestartBackoff = recipes.Backoff{Initial: d("0s")}
				rc.Lifecycle.Run.Health = &recipes.Health{
					Check: target.check, Interval: d("1s"), Timeout: d("5s"),
					StartPeriod: d("2500ms"), FailureThreshold: 2,
				}
			})
			if err := r.sup.Apply(context.Background(), []*Component{c}); err != nil {
				t.Fatal(err)
			}
			r.w.waitFor(c.Name(), StateRunning, "started")
			firstPid := r.pid(t, c.Name())
			step := func() { // one interval: the probe runs and its result is handled
				t.Helper()
				clock.WaitArmed(t, 1)
				clock.Advance(time.Second)
			}
			expect := func(state State, health Health) {
				t.Helper()
				clock.WaitArmed(t, 1) // the next probe is armed once the result was handled
				st, _ := r.sup.Component(c.Name())
				if st.State != state || st.Health != health {
					t.Fatalf("want %s/%s, got %s/%s (%s)\n%s", state, health, st.State, st.Health, st.LastError, r.w.transcript())
				}
			}

			// Failing inside start_period: not counted, still starting.
			step()
			expect(StateRunning, HealthStarting)
			step()
			expect(StateRunning, HealthStarting)
			if r.sup.WaitReady(timeout(t, 50*time.Millisecond), []string{c.Name()}) == nil {
				t.Fatal("ready before its first passing check")
			}

			// Passing: healthy, and ready for dependents and deployments.
			target.set(true)
			step()
			expect(StateRunning, HealthHealthy)
			if err := r.sup.WaitReady(timeout(t, 30*time.Second), []string{c.Name()}); err != nil {
				t.Fatal(err)
			}

			// Failing: DEGRADED, then restarted at the threshold.
			target.set(false)
			step()
			r.w.waitFor(c.Name(), StateDegraded, "health check failed (1/2)")
			step()
			r.w.waitFor(c.Name(), StateStopping, "health check failed (2/2)")
			r.w.waitFor(c.Name(), StateErrored, "restart 1 in 0s")
			r.w.waitFor(c.Name(), StateRunning, "started")
			waitGone(t, firstPid)
			if pid := r.pid(t, c.Name()); pid == firstPid {
				t.Fatal("not restarted")
			}

			// Recovery: healthy again, then a failure and a pass: DEGRADED
			// and back to RUNNING without a restart.
			target.set(true)
			step()
			expect(StateRunning, HealthHealthy)
			pid := r.pid(t, c.Name())
			target.set(false)
			step()
			r.w.waitFor(c.Name(), StateDegraded, "health check failed (1/2)")
			target.set(true)
			step()
			r.w.waitFor(c.Name(), StateRunning, "health check passed")
			expect(StateRunning, HealthHealthy)
			if r.pid(t, c.Name()) != pid {
				t.Fatal("restarted although it recovered below the threshold")
			}
		})
	}
}

func timeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestCheckerRejectsMalformedChecks(t *testing.T) {
	c := NewChecker()
	c.AllowRoot = true // the tests run as root
	for _, check := range []string{"ftp://x", "tcp://nohost", ""} {
		if ok, detail := c.Probe(context.Background(), nil, check); ok || detail == "" {
			t.Errorf("%q: ok=%v detail=%q", check, ok, detail)
		}
	}
	ok, detail := c.Probe(timeout(t, 5*time.Second), nil, "cmd:echo sick >&2; exit 4")
	if ok || detail != "health check exited with status 4: sick" {
		t.Errorf("cmd failure: ok=%v detail=%q", ok, detail)
	}
}
