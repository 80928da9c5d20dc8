package mqtttest

import (
	"strings"
	"testing"
)

func TestChooseBroker(t *testing.T) {
	for _, tc := range []struct {
		asked, forced string
		installed, ci bool
		kind          string
		v             verdict
		why           string
	}{
		{"", "", true, false, KindMosquitto, run, ""},
		{"", "", false, false, KindMochi, run, "MOSQUITTO IS NOT INSTALLED"},
		{"", "", false, true, "", fail, "CI=true: MOSQUITTO IS NOT INSTALLED"},
		{"", KindMochi, true, true, KindMochi, run, ""},
		{"", KindMosquitto, false, false, "", skip, "SKIPPED, NOT PASSED"},
		{"", KindMosquitto, false, true, "", fail, "CI=true"},
		{KindMosquitto, "", false, true, "", fail, "CI=true"},
		{KindMosquitto, "", false, false, "", skip, "apt-get install mosquitto"},
		{KindMochi, "", false, true, KindMochi, run, ""},
		{"", "hivemq", true, false, "", fail, `"hivemq"`},
	} {
		kind, v, why := choose(tc.asked, tc.forced, tc.installed, tc.ci)
		if kind != tc.kind || v != tc.v || !strings.Contains(why, tc.why) || (tc.why == "" && why != "") {
			t.Errorf("choose(%q, %q, installed %v, CI %v) = %q, %d, %q; want %q, %d, %q",
				tc.asked, tc.forced, tc.installed, tc.ci, kind, v, why, tc.kind, tc.v, tc.why)
		}
	}
}

func TestUnshare(t *testing.T) {
	for in, want := range map[string]string{
		"keystone/+/jobs/+/status":                      "keystone/+/jobs/+/status",
		"$share/keystone-fleet/keystone/+/jobs/+/state": "keystone/+/jobs/+/state",
		"$share/g": "",
	} {
		if got := unshare(in); got != want {
			t.Errorf("unshare(%q) = %q, want %q", in, got, want)
		}
	}
}
