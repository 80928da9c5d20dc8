package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/eclipse/paho.golang/paho"

	"github.com/keystone-edge/keystone/comms/message"
)

// ErrNoSignKey is returned by PublishJob when the Controller has no key
// to sign jobs with.
var ErrNoSignKey = errors.New("controller: no sign key: jobs cannot be signed")

// PublishJob signs job and publishes it, retained at QoS 1, on its
// device's jobs/notify topic, where it replaces the device's previous job:
// a device that is offline finds it when it comes back. Before it leaves,
// the signed document goes through the checks a device makes (form,
// signature, expiry against Config.Now); a job that fails them is not
// published.
//
// PublishJob waits for a connection until ctx ends and returns once the
// broker has acknowledged the job. After an error the job may or may not
// be on the broker; publishing the same job again is harmless.
func (c *Controller) PublishJob(ctx context.Context, job message.Job) error {
	if c.cfg.SignKey == nil {
		return ErrNoSignKey
	}
	if err := checkDeviceID(job.DeviceID); err != nil {
		return fmt.Errorf("job %s: %w", job.JobID, err)
	}
	doc, err := job.Sign(c.cfg.SignKey)
	if err != nil {
		return fmt.Errorf("sign job %s: %w", job.JobID, err)
	}
	if _, err := message.ParseJob(doc, c.ring, job.DeviceID, c.cfg.Now()); err != nil {
		return fmt.Errorf("job %s would be refused by device %s: %w", job.JobID, job.DeviceID, err)
	}
	topic := message.Topics{Prefix: c.cfg.TopicPrefix, DeviceID: job.DeviceID}.JobNotify()
	if err := c.publishRetained(ctx, topic, doc); err != nil {
		return fmt.Errorf("publish job %s for %s: %w", job.JobID, job.DeviceID, err)
	}
	c.log.Info("job published", "job_id", job.JobID, "device_id", job.DeviceID, "kind", job.Kind)
	return nil
}

// ClearJob removes deviceID's retained job from the broker (an empty
// retained message), so that a device connecting later finds none. A
// device that already has the job keeps it: to stop it, publish a cancel
// job instead.
func (c *Controller) ClearJob(ctx context.Context, deviceID string) error {
	if err := checkDeviceID(deviceID); err != nil {
		return err
	}
	topic := message.Topics{Prefix: c.cfg.TopicPrefix, DeviceID: deviceID}.JobNotify()
	if err := c.publishRetained(ctx, topic, nil); err != nil {
		return fmt.Errorf("clear the job of %s: %w", deviceID, err)
	}
	return nil
}

// publishRetained publishes at QoS 1 and waits for the PUBACK. It waits
// for a connection when there is none, and publishes again when the
// connection is lost before the PUBACK: a retained message published
// twice is the same retained message.
func (c *Controller) publishRetained(ctx context.Context, topic string, payload []byte) error {
	p := &paho.Publish{Topic: topic, QoS: 1, Retain: true, Payload: payload}
	for {
		conn, err := c.awaitConn(ctx)
		if err != nil {
			return err
		}
		// The wait for the PUBACK ends with the connection: the library
		// would otherwise wait out its packet timeout for an answer a lost
		// session never gives.
		pubCtx, cancel := context.WithCancel(ctx)
		stop := context.AfterFunc(conn, cancel)
		resp, err := c.cm.Publish(pubCtx, p)
		stop()
		cancel()
		switch {
		case err == nil:
			return nil
		case resp != nil: // the broker answered: a refusal
			return err
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, paho.ErrInvalidArguments):
			return err
		}
		c.log.Debug("publish interrupted by the connection; publishing again", "topic", topic, "error", err)
		select { // the connection is going down, if autopaho has not said so yet
		case <-conn.Done():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// checkDeviceID refuses an id that cannot be one topic level.
func checkDeviceID(id string) error {
	if id == "" {
		return errors.New("no device id")
	}
	if strings.ContainsAny(id, "/+#\x00") {
		return fmt.Errorf("device id %q may not hold /, +, # or NUL", id)
	}
	return nil
}
