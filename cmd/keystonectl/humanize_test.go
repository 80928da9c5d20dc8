package main

import (
	"testing"
	"time"
)

func TestAgo(t *testing.T) {
	now := fixedNow()
	cases := []struct {
		t    time.Time
		want string
	}{
		{time.Time{}, "-"},
		{now, "just now"},
		{now.Add(-999 * time.Millisecond), "just now"},
		{now.Add(-3 * time.Second), "3s ago"},
		{now.Add(-59 * time.Second), "59s ago"},
		{now.Add(-90 * time.Second), "1m ago"},
		{now.Add(-2 * time.Hour), "2h ago"},
		{now.Add(-47 * time.Hour), "47h ago"},
		{now.Add(-72 * time.Hour), "3d ago"},
		{now.Add(5 * time.Second), "in 5s"},
	}
	for _, tc := range cases {
		if got := ago(now, tc.t); got != tc.want {
			t.Errorf("ago(%v before now) = %q, want %q", now.Sub(tc.t), got, tc.want)
		}
	}
}

func TestBytesAndDurations(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 12 << 20: "12.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := bytesIEC(n); got != want {
			t.Errorf("bytesIEC(%d) = %q, want %q", n, got, want)
		}
	}
	for d, want := range map[time.Duration]string{4200 * time.Millisecond: "4.2s", 192 * time.Second: "3m12s"} {
		if got := elapsed(d); got != want {
			t.Errorf("elapsed(%v) = %q, want %q", d, got, want)
		}
	}
	if got := truncate("abcdef", 4); got != "abc…" {
		t.Errorf("truncate = %q", got)
	}
	if got := truncate("abc", 4); got != "abc" {
		t.Errorf("truncate short = %q", got)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"deploy/prod.toml": "deploy/prod.toml",
		"my file.toml":     "'my file.toml'",
		"it's.toml":        `'it'\''s.toml'`,
		"":                 "''",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %q, want %q", in, got, want)
		}
	}
}
