package comms

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/keystone-edge/keystone/comms/message"
	"github.com/keystone-edge/keystone/store"
)

// newStatus is a status message of job jobID, stamped now; its seq is set
// when it is published.
func (d *Device) newStatus(jobID, status string) message.JobStatus {
	return message.JobStatus{DeviceID: d.cfg.DeviceID, JobID: jobID, Status: status,
		AgentVersion: d.cfg.AgentVersion, TS: d.cfg.Now().UTC()}
}

// enqueueStatus puts a job status in the outbox, inside tx.
func (d *Device) enqueueStatus(ctx context.Context, tx *store.Tx, st message.JobStatus) error {
	doc, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode the status of job %s: %w", st.JobID, err)
	}
	return d.enqueueRaw(ctx, tx, st.JobID, doc)
}

// enqueueRaw puts an encoded status of job jobID in the outbox, inside tx.
func (d *Device) enqueueRaw(ctx context.Context, tx *store.Tx, jobID string, doc []byte) error {
	_, err := tx.EnqueueOutbox(ctx, store.Message{Topic: d.cfg.topics.JobStatus(jobID), Payload: doc, QoS: 1})
	return err
}

// components is the supervised components now, sorted by name, never nil.
func (d *Device) components() []message.ComponentStatus {
	comps := slices.Clone(d.cfg.Components())
	if comps == nil {
		comps = []message.ComponentStatus{}
	}
	slices.SortFunc(comps, func(a, b message.ComponentStatus) int { return strings.Compare(a.Name, b.Name) })
	return comps
}

// withSeq returns payload, a JSON object, with its "seq" member set to seq:
// the outbox numbers a message only when it is enqueued, so the number is
// written into the message when it leaves. A payload that is not a JSON
// object is returned as is.
func withSeq(payload []byte, seq int64) []byte {
	trimmed := bytes.TrimSpace(payload)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return payload
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &obj); err != nil {
		return payload
	}
	obj["seq"] = json.RawMessage(strconv.FormatInt(seq, 10))
	out, err := json.Marshal(obj)
	if err != nil {
		return payload
	}
	return out
}
