package comms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/keystone-edge/keystone/comms/message"
	"github.com/keystone-edge/keystone/store"
)

// intakeAction is what the device does with a job document it received.
type intakeAction int

const (
	// intakeDrop: the document has no usable job id, so there is no topic
	// to answer on; it is logged and dropped.
	intakeDrop intakeAction = iota
	// intakeIgnore: a job seen before, either unfinished (its final status
	// will come) or its retained copy delivered again at a subscription.
	intakeIgnore
	// intakeResend: a job seen before and finished, sent again by the
	// controller: its recorded final status goes out again. It is never
	// run again.
	intakeResend
	// intakeReject: recorded REJECTED, and a REJECTED status goes out.
	intakeReject
	// intakeAccept: recorded QUEUED, a QUEUED status goes out, and the job
	// is handed to the worker.
	intakeAccept
)

func (a intakeAction) String() string {
	switch a {
	case intakeDrop:
		return "drop"
	case intakeIgnore:
		return "ignore"
	case intakeResend:
		return "resend"
	case intakeReject:
		return "reject"
	case intakeAccept:
		return "accept"
	}
	return fmt.Sprintf("intakeAction(%d)", int(a))
}

// intakeInput is everything the intake decision depends on.
type intakeInput struct {
	Job      *message.Job // nil when not even the job id could be read
	ParseErr error        // from message.ParseJob
	// Known is the job recorded under the same id; nil when the id is new.
	Known *store.Job
	// NewestAccepted is the creation time of the newest job the device
	// accepted; zero when none.
	NewestAccepted time.Time
	// Retained: the document came as the retained copy a subscription
	// delivers, not as a fresh publication.
	Retained bool
	// SelfUpdate: the agent can update itself (Config.AgentUpdater).
	SelfUpdate bool
}

// intakeDecision is the intake's verdict; Code and Reason are set for a
// rejection (the status's error_code and detail) and say why for a drop.
type intakeDecision struct {
	Action intakeAction
	Code   string
	Reason string
}

// reasonUnsupported is why an agent_update job is refused.
const reasonUnsupported = "this agent does not update itself over MQTT (it runs without a self-update)"

// decideIntake decides what becomes of a job document. A known id wins over
// everything else: a job is never run twice, and the answer to a document
// seen again is the recorded one. Then the document's own checks, then
// staleness against the newest accepted job (a replayed old job cannot roll
// the device back), then the kind.
func decideIntake(in intakeInput) intakeDecision {
	if in.Job == nil {
		return intakeDecision{Action: intakeDrop, Reason: errText(in.ParseErr, "no job document")}
	}
	j := in.Job
	if !message.ValidJobID(j.JobID) {
		return intakeDecision{Action: intakeDrop, Reason: fmt.Sprintf("job id %q cannot name a status topic", j.JobID)}
	}
	if in.Known != nil {
		if in.Known.Status.Finished() && len(in.Known.Final) > 0 && !in.Retained {
			return intakeDecision{Action: intakeResend}
		}
		return intakeDecision{Action: intakeIgnore}
	}
	if in.ParseErr != nil {
		code := message.CodeMalformed
		var re *message.RejectError
		if errors.As(in.ParseErr, &re) {
			code = re.Code
		}
		return intakeDecision{Action: intakeReject, Code: code, Reason: in.ParseErr.Error()}
	}
	if created := j.CreatedAt.Truncate(time.Millisecond); !in.NewestAccepted.IsZero() && created.Before(in.NewestAccepted) {
		return intakeDecision{Action: intakeReject, Code: message.CodeStale, Reason: fmt.Sprintf(
			"job %s was created at %s, before the newest job this device accepted (created at %s): an older job cannot replace a newer one",
			j.JobID, stamp(j.CreatedAt), stamp(in.NewestAccepted))}
	}
	if j.Kind == message.KindAgentUpdate && !in.SelfUpdate {
		return intakeDecision{Action: intakeReject, Code: message.CodeUnsupported, Reason: reasonUnsupported}
	}
	return intakeDecision{Action: intakeAccept}
}

func errText(err error, otherwise string) string {
	if err == nil {
		return otherwise
	}
	return err.Error()
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// intake takes one job document from …/jobs/notify. The decision and what
// it records (the job, and the status that answers it in the outbox) are
// one store transaction, made before the broker is acknowledged: a job the
// broker considers delivered is in the store. An accepted job is then
// handed to the worker.
func (d *Device) intake(ctx context.Context, payload []byte, retained bool) error {
	now := d.cfg.Now()
	job, parseErr := message.ParseJob(payload, d.cfg.Keyring, d.cfg.DeviceID, now)
	var dec intakeDecision
	err := d.cfg.Store.Tx(ctx, func(tx *store.Tx) error {
		in := intakeInput{Job: job, ParseErr: parseErr, Retained: retained, SelfUpdate: d.cfg.AgentUpdater != nil}
		if job != nil && message.ValidJobID(job.JobID) {
			known, err := tx.GetJob(ctx, job.JobID)
			switch {
			case err == nil:
				in.Known = &known
			case !errors.Is(err, store.ErrNotFound):
				return err
			default:
				if in.NewestAccepted, err = tx.NewestAcceptedJob(ctx); err != nil {
					return err
				}
			}
		}
		dec = decideIntake(in)
		return d.recordIntake(ctx, tx, dec, job, in.Known, payload, now)
	})
	if err != nil {
		if job != nil {
			return fmt.Errorf("take job %s: %w", job.JobID, err)
		}
		return fmt.Errorf("take a job: %w", err)
	}
	if dec.Action == intakeAccept && d.cfg.FaultHook != nil {
		d.cfg.FaultHook(FaultJobRecorded) // tests crash here: recorded, not acknowledged, nothing published
	}
	log := d.log
	if job != nil {
		log = log.With("job_id", job.JobID, "kind", job.Kind)
	}
	switch dec.Action {
	case intakeDrop:
		log.Warn("job document dropped: it has no usable job id", "reason", dec.Reason)
	case intakeIgnore:
		log.Debug("job seen before; nothing to answer")
	case intakeResend:
		log.Info("job seen before; its final status is sent again")
	case intakeReject:
		log.Warn("job rejected", "error_code", dec.Code, "reason", dec.Reason)
	case intakeAccept:
		log.Info("job accepted", "created_at", stamp(job.CreatedAt))
		d.jobs.push(job)
	}
	if dec.Action == intakeResend || dec.Action == intakeReject || dec.Action == intakeAccept {
		d.pokeOutbox()
	}
	return nil
}

// recordIntake records what dec says, inside the intake's transaction.
func (d *Device) recordIntake(ctx context.Context, tx *store.Tx, dec intakeDecision, job *message.Job,
	known *store.Job, payload []byte, now time.Time) error {
	switch dec.Action {
	case intakeResend:
		return d.enqueueRaw(ctx, tx, job.JobID, known.Final)
	case intakeReject:
		st := d.newStatus(job.JobID, message.StatusRejected)
		st.ErrorCode, st.Detail = dec.Code, dec.Reason
		doc, err := json.Marshal(st)
		if err != nil {
			return err
		}
		if err := tx.RecordJob(ctx, store.Job{ID: job.JobID, Kind: job.Kind, Status: store.JobRejected, Final: doc,
			ReceivedAt: now, FinishedAt: now, Document: payload, CreatedAt: job.CreatedAt}); err != nil {
			return err
		}
		return d.enqueueRaw(ctx, tx, job.JobID, doc)
	case intakeAccept:
		if err := tx.RecordJob(ctx, store.Job{ID: job.JobID, Kind: job.Kind, Status: store.JobQueued,
			ReceivedAt: now, Document: payload, CreatedAt: job.CreatedAt}); err != nil {
			return err
		}
		return d.enqueueStatus(ctx, tx, d.newStatus(job.JobID, message.StatusQueued))
	}
	return nil
}
