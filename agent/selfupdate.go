package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/keystone-edge/keystone/agent/api"
	"github.com/keystone-edge/keystone/agent/selfupdate"
	"github.com/keystone-edge/keystone/comms"
	"github.com/keystone-edge/keystone/supervisor"
	"github.com/keystone-edge/keystone/supervisor/events"
)

// updateFile is the self-update record in the data folder. It is a file of
// its own, not a row of the store, because both releases must read it
// whatever the other did to the store's schema.
const updateFile = "agent-update.json"

// updateCheckEvery is how often a release on trial checks its health.
const updateCheckEvery = 250 * time.Millisecond

// updater is the shell around selfupdate.Step: it keeps the record,
// carries out the actions (fetch, save, exec, switch the current link,
// report) and feeds back what happened. One goroutine at a time steps it
// (mu).
type updater struct {
	version string // of the running image
	exe     string // the running executable
	rootDir string // releases/<version>/ and current
	dataDir string
	clock   supervisor.Clock
	log     *slog.Logger
	bus     events.Publisher

	// fetch installs release version into dir (verified); nil = no
	// repository configured.
	fetch func(ctx context.Context, version, dir string) error
	// healthy says whether this release may be committed.
	healthy func(ctx context.Context) error
	// handOver executes exe in place (see Agent.handOver).
	handOver func(exe, reason string)
	// report publishes the record's status (an MQTT job's status).
	report func(selfupdate.State)
	// fault is the test hook (Options.FaultHook); nil = none.
	fault func(point string)

	mu    sync.Mutex
	state selfupdate.State
	// ctx ends with the agent; background work (fetch, trial) runs under it.
	ctx context.Context
}

// Fault points of the self-update (Options.FaultHook), in the order an
// update passes them.
const (
	FaultUpdateBeforeExec   = "update:before-exec"   // trial recorded, the new release not executed yet
	FaultUpdateBooted       = "update:booted"        // the new release started, nothing taken over yet
	FaultUpdateRestoring    = "update:restoring"     // the supervisor runs, the components not adopted yet
	FaultUpdateBeforeCommit = "update:before-commit" // healthy; the current link not switched yet
	FaultUpdateAfterCommit  = "update:after-commit"  // committed; the old release not cleaned up yet
)

func (u *updater) hook(point string) {
	if u.fault != nil {
		u.fault(point)
	}
}

// onTrial reports whether this image is a release on trial.
func (u *updater) onTrial() bool {
	st := u.current()
	return st.Phase == selfupdate.PhaseTrial && st.To == u.version
}

// releaseDir is where release version lives.
func (u *updater) releaseDir(version string) string {
	return filepath.Join(u.rootDir, "releases", version)
}

// load reads the record, first thing at start.
func (u *updater) load() error {
	b, err := os.ReadFile(filepath.Join(u.dataDir, updateFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("read the self-update record: %w", err)
	}
	var st selfupdate.State
	if err := json.Unmarshal(b, &st); err != nil {
		path := filepath.Join(u.dataDir, updateFile)
		_ = os.Rename(path, path+".unreadable")
		return fmt.Errorf("read the self-update record %s: %w", updateFile, err)
	}
	u.mu.Lock()
	u.state = st
	u.mu.Unlock()
	if u.onTrial() {
		u.hook(FaultUpdateBooted)
	}
	return nil
}

// boot tells the core this image started, once the agent runs; handed
// says what the previous image of this process handed over (nil when it
// was started afresh). A release on trial then checks its health until it
// is committed or its deadline sends it back.
func (u *updater) boot(ctx context.Context, handed *HandedOver) {
	u.ctx = ctx
	if u.current().ID == "" {
		return
	}
	ev := selfupdate.Event{Kind: selfupdate.Booted, Running: u.version}
	if handed != nil {
		ev.Err = handed.ExecFailed
	}
	u.step(ev)
	if u.onTrial() {
		go u.trial()
	}
}

// request starts an update; it answers once the request is recorded.
func (u *updater) request(req api.AgentUpdateRequest, jobID string) (selfupdate.State, error) {
	if err := checkReleaseVersion(req.Version); err != nil {
		return selfupdate.State{}, err
	}
	var timeout time.Duration
	if req.Timeout != "" {
		d, err := time.ParseDuration(req.Timeout)
		if err != nil || d <= 0 {
			return selfupdate.State{}, badRequest("timeout %q is not a positive duration such as 2m", req.Timeout)
		}
		timeout = d
	}
	if u.fetch == nil && req.Version != u.version {
		return selfupdate.State{}, &requestError{status: http.StatusConflict, code: api.CodeConflict,
			msg: "no component repository is configured (trust.repository, trust.tuf_root): agent releases come from it"}
	}
	id := jobID
	if id == "" {
		id = "update-" + randomHex(4)
	}
	refused := u.step(selfupdate.Event{Kind: selfupdate.Request, ID: id, JobID: jobID, Version: req.Version,
		Running: u.version, Exe: u.exe, Timeout: timeout})
	if refused != "" {
		return selfupdate.State{}, &requestError{status: http.StatusConflict, code: api.CodeConflict, msg: refused}
	}
	return u.current(), nil
}

func checkReleaseVersion(v string) error {
	if v == "" || len(v) > 64 || strings.ContainsAny(v, "/\\ \x00") || v == "." || v == ".." {
		return badRequest("version %q is not a release version such as 1.4.0", v)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// current is the record as it stands.
func (u *updater) current() selfupdate.State {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.state
}

// step feeds ev to the core and carries out its actions in order; it
// returns the refusal of a request, if any.
func (u *updater) step(ev selfupdate.Event) (refused string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	ev.At = u.clock.Now()
	prev := u.state
	next, acts := selfupdate.Step(u.state, ev)
	u.state = next
	for _, a := range acts {
		switch a.Kind {
		case selfupdate.Refuse:
			return a.Err
		case selfupdate.Save:
			if err := u.save(next); err != nil {
				// Without the record an exec could not be undone: stop here.
				u.log.Error("self-update record not saved; the update stops", "err", err)
				u.state.Phase, u.state.Detail, u.state.Code = selfupdate.PhaseFailed, "record not saved: "+err.Error(), "INTERNAL"
				u.publish(u.state)
				return ""
			}
		case selfupdate.Report:
			u.publish(next)
		case selfupdate.Fetch:
			go u.stage(a.Version)
		case selfupdate.Exec:
			u.hook(FaultUpdateBeforeExec)
			u.log.Info("executing a release in place", "exe", a.Exe, "phase", string(next.Phase))
			u.handOver(a.Exe, fmt.Sprintf("agent update %s → %s (%s)", next.From, next.To, next.Phase))
		case selfupdate.SwitchCurrent:
			if a.Version != next.To {
				// Back to the running release before a trial: only if it is
				// an installed release; otherwise there is nothing to point at.
				if !fileExists(filepath.Join(u.releaseDir(a.Version), "keystone-agent")) {
					u.log.Warn("the running release is not under releases/; a failing new release will be started again by the service manager", "release", a.Version)
					continue
				}
			} else {
				u.hook(FaultUpdateBeforeCommit)
			}
			if err := switchCurrent(u.rootDir, a.Version); err != nil {
				// Committed in the record but not on disk would boot the
				// old release: leave the trial open; the deadline reverts.
				u.log.Error("switch the current release", "err", err)
				u.state = prev
				return ""
			}
		case selfupdate.Cleanup:
			u.hook(FaultUpdateAfterCommit)
			u.cleanup(next)
		}
	}
	return ""
}

func updateJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func (u *updater) save(st selfupdate.State) error {
	return writeFileSynced(filepath.Join(u.dataDir, updateFile), updateJSON(st))
}

func (u *updater) publish(st selfupdate.State) {
	u.log.Info("agent update", "id", st.ID, "from", st.From, "to", st.To, "phase", string(st.Phase),
		"rolled_back", st.RolledBack, "detail", st.Detail)
	u.bus.Publish(events.Event{Kind: events.KindAgentUpdate, From: st.From, To: st.To, Reason: st.Detail,
		Detail: map[string]string{"id": st.ID, "phase": string(st.Phase), "rolled_back": fmt.Sprint(st.RolledBack), "error_code": st.Code}})
	if u.report != nil {
		u.report(st)
	}
}

// stage fetches and installs the release, then feeds the outcome back.
func (u *updater) stage(version string) {
	dir := u.releaseDir(version)
	err := os.MkdirAll(filepath.Dir(dir), 0o755)
	if err == nil {
		err = u.fetch(u.ctx, version, dir)
	}
	if err != nil {
		u.step(selfupdate.Event{Kind: selfupdate.StageFailed, Err: err.Error(), Code: "DOWNLOAD_FAILED"})
		return
	}
	u.step(selfupdate.Event{Kind: selfupdate.Staged, Exe: filepath.Join(dir, "keystone-agent")})
}

// trial checks this release's health until it is committed or its
// deadline reverts it.
func (u *updater) trial() {
	t := time.NewTicker(updateCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-u.ctx.Done():
			return
		case <-t.C:
		}
		st := u.current()
		if st.Phase != selfupdate.PhaseTrial {
			return
		}
		ctx, cancel := context.WithTimeout(u.ctx, updateCheckEvery)
		err := u.healthy(ctx)
		cancel()
		if err == nil {
			u.step(selfupdate.Event{Kind: selfupdate.Healthy})
			continue
		}
		u.log.Debug("release on trial not healthy yet", "err", err)
		u.step(selfupdate.Event{Kind: selfupdate.Tick})
	}
}

// cleanup removes releases other than the current and the previous one.
func (u *updater) cleanup(st selfupdate.State) {
	entries, err := os.ReadDir(filepath.Join(u.rootDir, "releases"))
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.Name() == st.To || e.Name() == st.From {
			continue
		}
		if err := os.RemoveAll(filepath.Join(u.rootDir, "releases", e.Name())); err != nil {
			u.log.Warn("remove an old release", "release", e.Name(), "err", err)
		}
	}
}

// switchCurrent points rootDir/current at releases/version: a new link,
// renamed over the old one, the folder synced.
func switchCurrent(rootDir, version string) error {
	tmp := filepath.Join(rootDir, ".current-"+randomHex(4))
	if err := os.Symlink(filepath.Join("releases", version), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(rootDir, "current")); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return syncDir(rootDir)
}

// writeFileSynced replaces path with data durably: a temporary file,
// synced, renamed, the folder synced.
func writeFileSynced(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// wireAgentUpdate is the API's form of the record.
func wireAgentUpdate(st selfupdate.State, running string) api.AgentUpdate {
	return api.AgentUpdate{ID: st.ID, JobID: st.JobID, From: st.From, To: st.To, Phase: string(st.Phase),
		Finished: st.Phase.Finished(), RolledBack: st.RolledBack, Detail: st.Detail, ErrorCode: st.Code,
		Deadline: st.Deadline, Requested: st.Requested, Updated: st.Updated, Running: running}
}

// UpdateAgent starts the update an agent_update job asks for; the job id
// is the update's id, so a job seen again is not started twice.
func (u *updater) UpdateAgent(_ context.Context, jobID, version string) error {
	if u.current().ID == jobID {
		return nil
	}
	_, err := u.request(api.AgentUpdateRequest{Version: version}, jobID)
	return err
}

// AgentUpdateStatus is the update of job jobID as a job status reports it.
func (u *updater) AgentUpdateStatus(jobID string) (comms.AgentUpdateStatus, bool) {
	st := u.current()
	if st.ID != jobID || jobID == "" {
		return comms.AgentUpdateStatus{}, false
	}
	return comms.AgentUpdateStatus{Phase: string(st.Phase), Finished: st.Phase.Finished(),
		Succeeded: st.Phase == selfupdate.PhaseCommitted, RolledBack: st.RolledBack, Code: st.Code, Detail: st.Detail}, true
}

// installed runs release version, which a package installed and named
// current, on trial; a reload asks for it.
func (u *updater) installed(version, exe string) error {
	from := u.exe
	if own := filepath.Join(u.releaseDir(u.version), "keystone-agent"); fileExists(own) {
		from = own
	}
	refused := u.step(selfupdate.Event{Kind: selfupdate.Installed, ID: "reload-" + randomHex(4), Version: version,
		Running: u.version, Exe: exe, FromExe: from})
	if refused != "" {
		return errors.New(refused)
	}
	return nil
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}
