package comms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/keystone-edge/keystone/comms/message"
	"github.com/keystone-edge/keystone/store"
	"github.com/keystone-edge/keystone/supervisor/deploy"
	"github.com/keystone-edge/keystone/supervisor/events"
)

// pollEvery is how often the worker asks the engine about the deployments
// it follows, in case the bus dropped the event that ended one.
const pollEvery = 5 * time.Second

// jobQueue hands accepted jobs from the receive handler to the worker
// without ever blocking the handler.
type jobQueue struct {
	mu    sync.Mutex
	jobs  []*message.Job
	ready chan struct{}
}

func newJobQueue() *jobQueue { return &jobQueue{ready: make(chan struct{}, 1)} }

func (q *jobQueue) push(j *message.Job) {
	q.mu.Lock()
	q.jobs = append(q.jobs, j)
	q.mu.Unlock()
	signal(q.ready)
}

func (q *jobQueue) take() []*message.Job {
	q.mu.Lock()
	defer q.mu.Unlock()
	jobs := q.jobs
	q.jobs = nil
	return jobs
}

// queuedDeployment is a deployment job submitted earlier, as the
// supersede decision sees it.
type queuedDeployment struct {
	JobID     string
	CreatedAt time.Time
	Status    deploy.Status // where its deployment stands
}

// superseded returns the earlier deployment jobs a deployment job created
// at created replaces: those whose deployment is still QUEUED (one that
// runs is left to finish or fail) and that were not created after it.
// Sorted by job id.
func superseded(created time.Time, earlier []queuedDeployment) []string {
	var out []string
	for _, q := range earlier {
		if q.Status == deploy.StatusQueued && !q.CreatedAt.After(created) {
			out = append(out, q.JobID)
		}
	}
	slices.Sort(out)
	return out
}

// worker runs the accepted jobs, one at a time, and follows the
// deployments they submitted until each is finished. It is one goroutine,
// owned by Run, and owns its maps.
type worker struct {
	d       *Device
	follows map[string]*follow // by job id, which is the deployment id
	// supersededBy names, for a job canceled because a newer one came, the
	// newer one.
	supersededBy map[string]string
	// updates are the agent_update jobs followed, with the phase last
	// reported.
	updates map[string]string
	poll    *time.Timer
	pollC   <-chan time.Time
}

// follow is a deployment the worker reports on.
type follow struct {
	createdAt time.Time
	running   bool // its IN_PROGRESS has been reported
}

func newWorker(d *Device) *worker {
	return &worker{d: d, follows: map[string]*follow{}, supersededBy: map[string]string{}, updates: map[string]string{}}
}

// run resumes the jobs a previous run left unfinished, then takes new ones
// until ctx ends. A job cut short by ctx stays unfinished in the store, for
// the next run.
func (w *worker) run(ctx context.Context, deployments <-chan events.Event, resume []store.Job) {
	defer w.stopPoll()
	for _, j := range resume {
		if ctx.Err() != nil {
			return
		}
		w.resume(ctx, j)
	}
	for {
		w.armPoll()
		select {
		case <-ctx.Done():
			return
		case <-w.d.jobs.ready:
			for _, j := range w.d.jobs.take() {
				if ctx.Err() != nil {
					return
				}
				w.start(ctx, j)
			}
		case e, ok := <-deployments:
			if !ok {
				return
			}
			w.event(ctx, e)
		case <-w.pollC:
			w.poll, w.pollC = nil, nil
			// What the bus holds first: it is newer than nothing.
			for drained := false; !drained; {
				select {
				case e, ok := <-deployments:
					if !ok {
						return
					}
					w.event(ctx, e)
				default:
					drained = true
				}
			}
			for _, id := range w.followed() {
				w.check(ctx, id)
			}
		}
	}
}

func (w *worker) armPoll() {
	if len(w.follows) > 0 && w.poll == nil {
		w.poll = time.NewTimer(pollEvery)
		w.pollC = w.poll.C
	}
	if len(w.follows) == 0 {
		w.stopPoll()
	}
}

func (w *worker) stopPoll() {
	if w.poll != nil {
		w.poll.Stop()
	}
	w.poll, w.pollC = nil, nil
}

func (w *worker) followed() []string {
	ids := make([]string, 0, len(w.follows))
	for id := range w.follows {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// start runs a job just accepted.
func (w *worker) start(ctx context.Context, j *message.Job) {
	switch j.Kind {
	case message.KindDeployment:
		w.submit(ctx, j)
	case message.KindCancel:
		w.cancel(ctx, j)
	case message.KindAgentUpdate:
		w.updateAgent(ctx, j)
	default:
		st := w.d.newStatus(j.JobID, message.StatusRejected)
		st.ErrorCode, st.Detail = message.CodeUnsupported, reasonUnsupported
		w.finish(ctx, st)
	}
}

// resume takes up a job a previous run left unfinished: a deployment the
// engine knows is followed to its end, one it does not is submitted (its
// deployment id is the job id, so nothing runs twice).
func (w *worker) resume(ctx context.Context, j store.Job) {
	w.d.log.Info("resuming an unfinished job", "job_id", j.ID, "kind", j.Kind, "status", j.Status)
	if u := w.d.cfg.AgentUpdater; j.Kind == message.KindAgentUpdate && u != nil {
		if _, ok := u.AgentUpdateStatus(j.ID); ok {
			w.updates[j.ID] = ""
			w.checkUpdate(ctx, j.ID)
			return
		}
	}
	if j.Kind == message.KindDeployment {
		_, err := w.d.cfg.Deployer.Get(ctx, j.ID)
		switch {
		case err == nil:
			w.follows[j.ID] = &follow{createdAt: j.CreatedAt, running: j.Status == store.JobInProgress}
			w.check(ctx, j.ID)
			return
		case !errors.Is(err, deploy.ErrNotFound):
			if ctx.Err() == nil {
				w.d.log.Error("cannot resume the job; it is tried again at the next start", "job_id", j.ID, "error", err)
			}
			return
		}
	}
	job, err := storedJob(j)
	if err != nil {
		st := w.d.newStatus(j.ID, message.StatusFailed)
		st.ErrorCode, st.Detail = CodeInternal, err.Error()
		w.finish(ctx, st)
		return
	}
	w.start(ctx, job)
}

// storedJob reads a recorded job's document. It was checked when it was
// accepted, so its expiry is not checked again.
func storedJob(j store.Job) (*message.Job, error) {
	if len(j.Document) == 0 {
		return nil, fmt.Errorf("job %s cannot be resumed: its document was not kept", j.ID)
	}
	var job message.Job
	if err := json.Unmarshal(j.Document, &job); err != nil {
		return nil, fmt.Errorf("job %s cannot be resumed: its document: %w", j.ID, err)
	}
	if job.JobID != j.ID || job.Kind != j.Kind ||
		job.Kind == message.KindDeployment && job.Deployment == nil || job.Kind == message.KindCancel && job.Cancel == nil ||
		job.Kind == message.KindAgentUpdate && job.AgentUpdate == nil {
		return nil, fmt.Errorf("job %s cannot be resumed: its document does not match its record", j.ID)
	}
	return &job, nil
}

// submit hands a deployment job to the engine and follows it; a newer job
// then replaces the earlier ones still queued.
func (w *worker) submit(ctx context.Context, j *message.Job) {
	acc, err := w.d.cfg.Deployer.Submit(ctx, deploy.Request{Manifest: []byte(j.Deployment.Manifest),
		ManifestName: "job " + j.JobID, Origin: "mqtt", ID: j.JobID})
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		st := w.d.newStatus(j.JobID, message.StatusFailed)
		st.ErrorCode, st.Detail = jobError(err)
		st.Components = w.d.components()
		w.d.log.Warn("deployment refused", "job_id", j.JobID, "error_code", st.ErrorCode, "error", err)
		w.finish(ctx, st)
		return
	}
	w.d.log.Info("deployment submitted", "job_id", j.JobID, "existing", acc.Existing)
	w.follows[j.JobID] = &follow{createdAt: j.CreatedAt}
	if acc.Existing {
		w.check(ctx, j.JobID)
	}
	w.supersede(ctx, j.JobID, j.CreatedAt)
}

// supersede cancels the earlier deployment jobs that newID replaces.
func (w *worker) supersede(ctx context.Context, newID string, created time.Time) {
	var earlier []queuedDeployment
	for _, id := range w.followed() {
		f := w.follows[id]
		if id == newID || f.running {
			continue
		}
		dep, err := w.d.cfg.Deployer.Get(ctx, id)
		if err != nil {
			continue
		}
		earlier = append(earlier, queuedDeployment{JobID: id, CreatedAt: f.createdAt, Status: dep.Status})
	}
	for _, id := range superseded(created, earlier) {
		if err := w.d.cfg.Deployer.Cancel(ctx, id); err != nil {
			if ctx.Err() == nil {
				w.d.log.Warn("cannot cancel a superseded job", "job_id", id, "by", newID, "error", err)
			}
			continue
		}
		w.supersededBy[id] = newID
		w.d.log.Info("job superseded before it started", "job_id", id, "by", newID)
	}
}

// cancel runs a cancel job: the job ends SUCCEEDED once its target is
// canceled (the target reports CANCELED itself), or FAILED with why not.
func (w *worker) cancel(ctx context.Context, j *message.Job) {
	target := j.Cancel.JobID
	st := w.d.newStatus(j.JobID, message.StatusSucceeded)
	st.Detail = fmt.Sprintf("job %s canceled", target)
	if err := w.d.cfg.Deployer.Cancel(ctx, target); err != nil {
		if ctx.Err() != nil {
			return
		}
		dep, gerr := w.d.cfg.Deployer.Get(ctx, target)
		if errors.Is(err, deploy.ErrConflict) && gerr == nil && dep.Status == deploy.StatusCanceled {
			st.Detail = fmt.Sprintf("job %s was already canceled", target)
		} else {
			st.Status = message.StatusFailed
			st.ErrorCode, st.Detail = jobError(err)
		}
	}
	w.finish(ctx, st)
}

// event takes one bus event: deployment progress of a followed job
// becomes an IN_PROGRESS status, its end the final status.
func (w *worker) event(ctx context.Context, e events.Event) {
	if e.Kind == events.KindAgentUpdate {
		if _, ok := w.updates[e.Detail["id"]]; ok {
			w.checkUpdate(ctx, e.Detail["id"])
		}
		return
	}
	if e.Kind != events.KindDeployment {
		return
	}
	f := w.follows[e.Deployment]
	if f == nil {
		return
	}
	switch {
	case e.Step == "" && deploy.Status(e.Reason).Finished():
		w.check(ctx, e.Deployment)
	case e.Step == "" && e.Reason == string(deploy.StatusInProgress):
		if !f.running {
			f.running = true
			w.progress(ctx, e.Deployment, "", "")
		}
	case e.Step != "" && e.Step != string(deploy.StepValidate):
		// validate is done while the deployment is still queued; every
		// other step is taken while it runs.
		f.running = true
		w.progress(ctx, e.Deployment, e.Step+":"+e.Reason, e.Detail["detail"])
	}
}

// check asks the engine where a followed deployment stands: a finished one
// gets its final status, a running one not yet reported its IN_PROGRESS.
func (w *worker) check(ctx context.Context, id string) {
	f := w.follows[id]
	if f == nil {
		return
	}
	dep, err := w.d.cfg.Deployer.Get(ctx, id)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			w.d.log.Warn("ask the engine about a job's deployment", "job_id", id, "error", err)
		}
	case dep.Status.Finished():
		w.finish(ctx, w.finalStatus(id, dep))
	case dep.Status == deploy.StatusInProgress && !f.running:
		f.running = true
		w.progress(ctx, id, lastStep(dep), "")
	}
}

func lastStep(dep deploy.Deployment) string {
	if len(dep.Steps) == 0 {
		return ""
	}
	s := dep.Steps[len(dep.Steps)-1]
	return string(s.Name) + ":" + string(s.Status)
}

// finalStatus is the status that ends a job whose deployment finished.
func (w *worker) finalStatus(id string, dep deploy.Deployment) message.JobStatus {
	status := message.StatusFailed
	switch dep.Status {
	case deploy.StatusSucceeded:
		status = message.StatusSucceeded
	case deploy.StatusCanceled:
		status = message.StatusCanceled
	}
	st := w.d.newStatus(id, status)
	st.ErrorCode, st.RolledBack, st.Detail = string(dep.ErrorCode), dep.RolledBack, dep.Error
	if by := w.supersededBy[id]; by != "" && dep.Status == deploy.StatusCanceled {
		st.Detail = fmt.Sprintf("superseded by job %s before it started", by)
	}
	st.Components = w.d.components()
	return st
}

// progress records a job IN_PROGRESS and reports a step of it.
func (w *worker) progress(ctx context.Context, id, step, detail string) {
	st := w.d.newStatus(id, message.StatusInProgress)
	st.Step, st.Detail = step, detail
	err := w.d.cfg.Store.Tx(ctx, func(tx *store.Tx) error {
		if err := tx.SetJobStatus(ctx, id, store.JobInProgress); err != nil {
			return err
		}
		return w.d.enqueueStatus(ctx, tx, st)
	})
	if err != nil {
		if ctx.Err() == nil {
			w.d.log.Error("record a job's progress", "job_id", id, "error", err)
		}
		return
	}
	w.d.pokeOutbox()
}

// finish records a job's final status and puts it in the outbox, in one
// transaction, and stops following it.
func (w *worker) finish(ctx context.Context, st message.JobStatus) {
	doc, err := json.Marshal(st)
	if err == nil {
		last, _ := json.Marshal(message.LastJob{JobID: st.JobID, Status: st.Status})
		err = w.d.cfg.Store.Tx(ctx, func(tx *store.Tx) error {
			if err := tx.FinishJob(ctx, st.JobID, store.JobStatus(st.Status), doc, w.d.cfg.Now()); err != nil {
				return err
			}
			if err := w.d.enqueueRaw(ctx, tx, st.JobID, doc); err != nil {
				return err
			}
			return tx.SetValue(ctx, lastJobKey, last)
		})
	}
	if err != nil {
		if ctx.Err() == nil {
			w.d.log.Error("record a job's end; it is resumed at the next start", "job_id", st.JobID, "error", err)
		}
		return
	}
	delete(w.follows, st.JobID)
	delete(w.supersededBy, st.JobID)
	w.d.log.Info("job finished", "job_id", st.JobID, "status", st.Status, "error_code", st.ErrorCode)
	w.d.pokeOutbox()
	w.d.requestState()
}

// updateAgent hands an agent_update job to the agent's self-update and
// follows it. The agent executes another release in the middle of it; the
// next image resumes the job from the store and reports its end.
func (w *worker) updateAgent(ctx context.Context, j *message.Job) {
	if err := w.d.cfg.AgentUpdater.UpdateAgent(ctx, j.JobID, j.AgentUpdate.Version); err != nil {
		if ctx.Err() != nil {
			return
		}
		st := w.d.newStatus(j.JobID, message.StatusFailed)
		st.ErrorCode, st.Detail = CodeAgentUpdateRefused, err.Error()
		w.finish(ctx, st)
		return
	}
	w.updates[j.JobID] = ""
	w.checkUpdate(ctx, j.JobID)
}

// checkUpdate reports where a followed agent update stands: each new phase
// as IN_PROGRESS, its end as the final status.
func (w *worker) checkUpdate(ctx context.Context, id string) {
	u, ok := w.d.cfg.AgentUpdater.AgentUpdateStatus(id)
	if !ok {
		return
	}
	if !u.Finished {
		if w.updates[id] != u.Phase {
			w.updates[id] = u.Phase
			w.progress(ctx, id, "agent_update:"+u.Phase, u.Detail)
		}
		return
	}
	status := message.StatusFailed
	if u.Succeeded {
		status = message.StatusSucceeded
	}
	st := w.d.newStatus(id, status)
	st.ErrorCode, st.RolledBack, st.Detail = u.Code, u.RolledBack, u.Detail
	st.Components = w.d.components()
	delete(w.updates, id)
	w.finish(ctx, st)
}
