package supervisor

import (
	"context"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/internal/fakeclock"
	"github.com/keystone-edge/keystone/internal/proctest"
	"github.com/keystone-edge/keystone/recipes"
)

func before(t *testing.T, w *watcher, a string, as State, b string, bs State) {
	t.Helper()
	ia, ib := w.index(a, as), w.index(b, bs)
	if ia < 0 || ib < 0 || ia > ib {
		t.Fatalf("want %s %s before %s %s (%d, %d):\n%s", a, as, b, bs, ia, ib, w.transcript())
	}
}

// Acceptance 3: start in dependency order; a hard dependency's failure stops
// its dependents in reverse order and they start again once it recovers; a
// soft dependency's failure leaves its dependents running.
func TestDependencies(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	r := newRig(t, clock, Config{})
	db := proc("com.example.db", "exec sleep 1000")
	app := proc("com.example.app", "exec sleep 1000", dependsOn("com.example.db", recipes.DependencyHard))
	web := proc("com.example.web", "exec sleep 1000", dependsOn("com.example.app", recipes.DependencyHard))
	logs := proc("com.example.logs", "exec sleep 1000", dependsOn("com.example.db", recipes.DependencySoft))
	all := []string{db.Name(), app.Name(), web.Name(), logs.Name()}
	if err := r.sup.Apply(context.Background(), []*Component{web, logs, app, db}); err != nil {
		t.Fatal(err)
	}
	if err := r.sup.WaitReady(timeout(t, 30*time.Second), all); err != nil {
		t.Fatal(err)
	}
	for _, n := range all {
		r.w.waitFor(n, StateRunning, "started")
	}
	before(t, r.w, db.Name(), StateRunning, app.Name(), StateStarting)
	before(t, r.w, app.Name(), StateRunning, web.Name(), StateStarting)
	before(t, r.w, db.Name(), StateRunning, logs.Name(), StateStarting)
	logsPid := r.pid(t, logs.Name())

	// db crashes: web stops before app, both as a stop (not a failure);
	// logs, a soft dependent, keeps running.
	r.w.log, r.w.used = nil, map[int]bool{}
	r.kill(t, db.Name())
	r.w.waitFor(db.Name(), StateErrored, "restart 1 in 1s")
	r.w.waitFor(web.Name(), StateStopped, "hard dependency com.example.app is going down")
	r.w.waitFor(app.Name(), StateStopped, "hard dependency com.example.db is ERRORED")
	before(t, r.w, web.Name(), StateStopping, app.Name(), StateStopping)
	before(t, r.w, web.Name(), StateStopped, app.Name(), StateStopping)
	for _, n := range []string{app.Name(), web.Name()} {
		if st, _ := r.sup.Component(n); st.State != StateStopped || st.Restarts != 0 || st.LastError != "" ||
			st.Failure != FailureDependency {
			t.Fatalf("%s after its dependency failed: %+v", n, st)
		}
	}
	if st, _ := r.sup.Component(logs.Name()); st.State != StateRunning || st.Pid != logsPid {
		t.Fatalf("soft dependent disturbed: %+v", st)
	}

	// db recovers after its backoff: app, then web start again.
	clock.WaitArmed(t, 1)
	clock.Advance(time.Second)
	r.w.waitFor(db.Name(), StateRunning, "started")
	r.w.waitFor(app.Name(), StateRunning, "started")
	r.w.waitFor(web.Name(), StateRunning, "started")
	before(t, r.w, db.Name(), StateRunning, app.Name(), StateStarting)
	before(t, r.w, app.Name(), StateRunning, web.Name(), StateStarting)
	if st, _ := r.sup.Component(logs.Name()); st.Pid != logsPid {
		t.Fatalf("soft dependent restarted: %+v", st)
	}

	// Stopping db by hand takes its hard dependents down first and keeps
	// them down; starting it brings them back.
	r.w.log, r.w.used = nil, map[int]bool{}
	state, err := r.sup.StopComponent(context.Background(), db.Name())
	if err != nil {
		t.Fatal(err)
	}
	if state != StateStopping && state != StateStopped {
		t.Fatalf("stop answered %s", state)
	}
	r.w.waitFor(db.Name(), StateStopped, "stop requested")
	before(t, r.w, web.Name(), StateStopped, app.Name(), StateStopping)
	before(t, r.w, app.Name(), StateStopped, db.Name(), StateStopping)
	// A start of app waits for db, and its status says so.
	if state, err := r.sup.StartComponent(context.Background(), app.Name()); err != nil || state != StateStopped {
		t.Fatalf("start of app while db is stopped: %s, %v", state, err)
	}
	if st, _ := r.sup.Component(app.Name()); st.WaitingFor != "hard dependency com.example.db is STOPPED" {
		t.Fatalf("app's status does not say what it waits for: %+v", st)
	}
	if _, err := r.sup.StartComponent(context.Background(), db.Name()); err != nil {
		t.Fatal(err)
	}
	if err := r.sup.WaitReady(timeout(t, 30*time.Second), all); err != nil {
		t.Fatal(err)
	}

	// A restart by hand takes the dependents down first too, and answers
	// once db runs again.
	r.w.log, r.w.used = nil, map[int]bool{}
	dbPid := r.pid(t, db.Name())
	state, err = r.sup.RestartComponent(context.Background(), db.Name())
	if err != nil || state != StateRunning {
		t.Fatalf("restart answered %s, %v", state, err)
	}
	r.w.waitFor(db.Name(), StateStopped, "restart requested")
	before(t, r.w, web.Name(), StateStopped, app.Name(), StateStopping)
	before(t, r.w, app.Name(), StateStopped, db.Name(), StateStopping)
	if err := r.sup.WaitReady(timeout(t, 30*time.Second), all); err != nil {
		t.Fatal(err)
	}
	if r.pid(t, db.Name()) == dbPid {
		t.Fatal("db not restarted")
	}
}

// Stopping the agent stops everything in reverse dependency order, as a
// stop ("agent shutdown"), and leaves no process behind.
func TestShutdownStopsInReverseOrder(t *testing.T) {
	r := newRig(t, nil, Config{})
	db := proc("com.example.db", "exec sleep 1000")
	app := proc("com.example.app", "exec sleep 1000", dependsOn("com.example.db", recipes.DependencyHard))
	logs := proc("com.example.logs", "exec sleep 1000", dependsOn("com.example.db", recipes.DependencySoft))
	if err := r.sup.Apply(context.Background(), []*Component{db, app, logs}); err != nil {
		t.Fatal(err)
	}
	names := []string{db.Name(), app.Name(), logs.Name()}
	if err := r.sup.WaitReady(timeout(t, 30*time.Second), names); err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, n := range names {
		pids = append(pids, r.pid(t, n))
	}
	if err := r.sup.Stop(timeout(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		r.w.waitFor(n, StateStopped, "agent shutdown")
	}
	before(t, r.w, app.Name(), StateStopped, db.Name(), StateStopping)
	before(t, r.w, logs.Name(), StateStopped, db.Name(), StateStopping)
	for _, e := range r.w.log {
		if e.To == StateErrored.String() || e.To == StateBroken.String() {
			t.Fatalf("shutdown looked like a failure: %+v", e)
		}
	}
	for _, pid := range pids {
		if proctest.Alive(pid) {
			t.Fatalf("pid %d survived shutdown", pid)
		}
	}
	if _, err := r.sup.StartComponent(context.Background(), db.Name()); err == nil {
		t.Fatal("a stopped supervisor took a command")
	}
}
