package message

import (
	"fmt"
	"strings"
)

// DefaultTopicPrefix is the first level of every topic.
const DefaultTopicPrefix = "keystone"

// Topics names the topics of one device under a prefix:
// <prefix>/<device_id>/jobs/notify, …/jobs/<job_id>/status, …/state,
// …/events and …/metrics.
type Topics struct {
	Prefix   string
	DeviceID string
}

func (t Topics) base() string { return t.Prefix + "/" + t.DeviceID }

// JobNotify is where the controller publishes the device's latest job,
// retained.
func (t Topics) JobNotify() string { return t.base() + "/jobs/notify" }

// JobStatus is where the device publishes the statuses of job jobID.
func (t Topics) JobStatus(jobID string) string { return t.base() + "/jobs/" + jobID + "/status" }

// State is the device's retained state (and its will message).
func (t Topics) State() string { return t.base() + "/state" }

// Events carries the device's state transitions, QoS 0.
func (t Topics) Events() string { return t.base() + "/events" }

// Metrics carries plugin metrics when the device is configured to.
func (t Topics) Metrics() string { return t.base() + "/metrics" }

// AllStatuses is the controller's filter for every device's job statuses.
func AllStatuses(prefix string) string { return prefix + "/+/jobs/+/status" }

// AllStates is the controller's filter for every device's state.
func AllStates(prefix string) string { return prefix + "/+/state" }

// ParseStatusTopic splits <prefix>/<device_id>/jobs/<job_id>/status.
func ParseStatusTopic(prefix, topic string) (deviceID, jobID string, err error) {
	parts := strings.Split(strings.TrimPrefix(topic, prefix+"/"), "/")
	if !strings.HasPrefix(topic, prefix+"/") || len(parts) != 4 || parts[1] != "jobs" || parts[3] != "status" {
		return "", "", fmt.Errorf("%q is not a job status topic under %q", topic, prefix)
	}
	return parts[0], parts[2], nil
}

// ParseStateTopic splits <prefix>/<device_id>/state.
func ParseStateTopic(prefix, topic string) (deviceID string, err error) {
	parts := strings.Split(strings.TrimPrefix(topic, prefix+"/"), "/")
	if !strings.HasPrefix(topic, prefix+"/") || len(parts) != 2 || parts[1] != "state" {
		return "", fmt.Errorf("%q is not a state topic under %q", topic, prefix)
	}
	return parts[0], nil
}
