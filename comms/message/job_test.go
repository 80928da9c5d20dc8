package message

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/ota/sign"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func testKey(t *testing.T) (ed25519.PrivateKey, *sign.Keyring) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := sign.NewKeyring(pub)
	if err != nil {
		t.Fatal(err)
	}
	return priv, ring
}

func deploymentJob() Job {
	return Job{JobID: "job-1", Kind: KindDeployment, DeviceID: "pos-12", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour),
		Deployment: &DeploymentJob{Manifest: "format = 1\n"}}
}

func TestParseJobChecksFormSignatureDeviceAndExpiry(t *testing.T) {
	priv, ring := testKey(t)
	stranger, _ := testKey(t)
	good, err := deploymentJob().Sign(priv)
	if err != nil {
		t.Fatal(err)
	}
	j, err := ParseJob(good, ring, "pos-12", t0.Add(time.Minute))
	if err != nil || j.JobID != "job-1" || j.Deployment.Manifest != "format = 1\n" {
		t.Fatalf("a good job: %+v, %v", j, err)
	}
	byStranger, _ := deploymentJob().Sign(stranger)
	tampered := []byte(strings.Replace(string(good), "format = 1", "format = 2", 1))
	unsigned := []byte(`{"job_id":"job-1","kind":"deployment","device_id":"pos-12","created_at":"2026-12-01T10:00:00Z","expires_at":"2026-12-01T11:00:00Z","deployment":{"manifest":"x"}}`)
	for _, tc := range []struct {
		name string
		data []byte
		dev  string
		at   time.Time
		code string
		why  string
	}{
		{"changed after signing", tampered, "pos-12", t0, CodeSignatureInvalid, "changed after it was signed"},
		{"signed by a stranger", byStranger, "pos-12", t0, CodeSignatureInvalid, "does not trust"},
		{"unsigned", unsigned, "pos-12", t0, CodeSignatureInvalid, "not signed"},
		{"another device", good, "pos-13", t0, CodeWrongDevice, `for device "pos-12"`},
		{"expired", good, "pos-12", t0.Add(time.Hour), CodeExpired, "expired at 2026-12-01T11:00:00Z"},
		{"not JSON", []byte("{"), "pos-12", t0, CodeMalformed, "not valid JSON"},
		{"bad kind", []byte(strings.Replace(string(good), `"deployment","`, `"reboot","`, 1)), "pos-12", t0, CodeMalformed, `kind "reboot"`},
	} {
		_, err := ParseJob(tc.data, ring, tc.dev, tc.at)
		var re *RejectError
		if !errors.As(err, &re) || re.Code != tc.code || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%s: %v, want %s saying %q", tc.name, err, tc.code, tc.why)
		}
	}
}

func TestTopics(t *testing.T) {
	tp := Topics{Prefix: "keystone", DeviceID: "pos-12"}
	if tp.JobStatus("j1") != "keystone/pos-12/jobs/j1/status" || tp.State() != "keystone/pos-12/state" || tp.JobNotify() != "keystone/pos-12/jobs/notify" {
		t.Errorf("topics: %s %s %s", tp.JobStatus("j1"), tp.State(), tp.JobNotify())
	}
	dev, job, err := ParseStatusTopic("keystone", tp.JobStatus("j1"))
	if err != nil || dev != "pos-12" || job != "j1" {
		t.Errorf("ParseStatusTopic: %s %s %v", dev, job, err)
	}
	if _, _, err := ParseStatusTopic("keystone", "keystone/pos-12/state"); err == nil {
		t.Error("a state topic parsed as a status topic")
	}
}
