package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// result is what one keystonectl invocation produced.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs keystonectl in-process with args and empty stdin.
func runCLI(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, strings.NewReader(""), &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// none says a stream must be empty; nil says it is not checked.
var none = []string{}

// expect fails the test unless r has the exit code and its streams contain
// the given fragments (see none).
func (r result) expect(t *testing.T, code int, stdout, stderr []string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit code = %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	check := func(name, got string, want []string) {
		if want != nil && len(want) == 0 && got != "" {
			t.Errorf("%s should be empty, got:\n%s", name, got)
		}
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("%s should contain %q, got:\n%s", name, w, got)
			}
		}
	}
	check("stdout", r.stdout, stdout)
	check("stderr", r.stderr, stderr)
}

func TestUsageErrorsExitTwoWithHelpHint(t *testing.T) {
	cases := []struct {
		name   string
		args   []string
		stderr []string
	}{
		{"no command", nil, []string{"Error: keystonectl needs a command: ", "keys", "recipe", "try 'keystonectl --help'"}},
		{"unknown command", []string{"recpie", "sign"}, []string{`unknown command "recpie" for "keystonectl"`, `did you mean "recipe"?`, "try 'keystonectl --help'"}},
		{"unknown subcommand", []string{"recipe", "sigh"}, []string{`unknown command "sigh" for "keystonectl recipe"`, "try 'keystonectl recipe --help'"}},
		{"group alone", []string{"keys"}, []string{"keystonectl keys needs a command: generate", "try 'keystonectl keys --help'"}},
		{"unknown flag", []string{"recipe", "sign", "--bogus", "x"}, []string{"unknown flag: --bogus", "try 'keystonectl recipe sign --help'"}},
		{"bad output format", []string{"-o", "yaml", "keys", "generate", "--out", "x"}, []string{`invalid argument "yaml"`, "must be table or json", "try 'keystonectl keys generate --help'"}},
		{"bad output format after command", []string{"recipe", "verify", "--pub", "p", "f", "--output=xml"}, []string{"must be table or json"}},
		{"missing flag value", []string{"keys", "generate", "--out"}, []string{"flag needs an argument", "try 'keystonectl keys generate --help'"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			runCLI(t, tc.args...).expect(t, exitUsage, none, tc.stderr)
		})
	}
}

// TestEveryCommandHelp checks that each command's help has a usage line,
// says what it does, shows an example and lists its exit codes, and that
// asking for help succeeds.
func TestEveryCommandHelp(t *testing.T) {
	root := newRootCmd(&options{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}})
	var walk func(*cobra.Command)
	seen := 0
	walk = func(cmd *cobra.Command) {
		if cmd.Name() == "help" {
			return
		}
		seen++
		path := strings.Fields(cmd.CommandPath())[1:]
		t.Run(cmd.CommandPath(), func(t *testing.T) {
			r := runCLI(t, append(path, "--help")...)
			r.expect(t, exitOK, []string{"Usage:\n  " + cmd.CommandPath(), "Examples:\n  keystonectl", "Exit codes:\n  0  "}, none)
			if len(cmd.Long) < 40 {
				t.Errorf("Long help %q does not say what the command does", cmd.Long)
			}
		})
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
	}
	walk(root)
	if seen < 5 { // keystonectl, keys, keys generate, recipe, recipe sign, …
		t.Fatalf("walked %d commands, want at least 5", seen)
	}
}

func TestGlobalFlags(t *testing.T) {
	// probe reports the global options as a command sees them.
	probe := func(env map[string]string, args ...string) result {
		var stdout, stderr bytes.Buffer
		opts := &options{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr, Getenv: func(k string) string { return env[k] }}
		root := newRootCmd(opts)
		root.AddCommand(&cobra.Command{
			Use:  "probe",
			Args: noArgs,
			RunE: func(*cobra.Command, []string) error {
				return opts.render(map[string]string{"socket": opts.Socket}, table{rows: [][]string{{opts.Socket, string(opts.Output)}}})
			},
		})
		root.SetArgs(args)
		return result{code: exitCode(root.Execute(), &stderr), stdout: stdout.String(), stderr: stderr.String()}
	}

	probe(nil, "probe").expect(t, exitOK, []string{"/run/keystone/agent.sock  table\n"}, none)
	probe(map[string]string{"KEYSTONE_SOCKET": "/tmp/env.sock"}, "probe").
		expect(t, exitOK, []string{"/tmp/env.sock  table\n"}, none)
	probe(map[string]string{"KEYSTONE_SOCKET": "/tmp/env.sock"}, "--socket", "/tmp/flag.sock", "probe").
		expect(t, exitOK, []string{"/tmp/flag.sock  table\n"}, none)
	probe(nil, "probe", "-o", "json").expect(t, exitOK, []string{"{\n  \"socket\": \"/run/keystone/agent.sock\"\n}\n"}, none)
	probe(nil, "--output", "table", "probe").expect(t, exitOK, []string{"table\n"}, none)
	probe(nil, "probe", "extra").expect(t, exitUsage, none, []string{"keystonectl probe takes no arguments", "try 'keystonectl probe --help'"})
}

func TestExitCodeMapping(t *testing.T) {
	var stderr bytes.Buffer
	if code := exitCode(nil, &stderr); code != exitOK || stderr.Len() != 0 {
		t.Errorf("nil: code %d, stderr %q", code, stderr.String())
	}
	stderr.Reset()
	if code := exitCode(&SilentError{Code: 3}, &stderr); code != 3 || stderr.Len() != 0 {
		t.Errorf("SilentError{3}: code %d, stderr %q", code, stderr.String())
	}
	if code := exitCode(&SilentError{}, &stderr); code != exitError {
		t.Errorf("SilentError{0}: code %d, want 1", code)
	}
	stderr.Reset()
	if code := exitCode(errString("disk on fire\n"), &stderr); code != exitError || stderr.String() != "Error: disk on fire\n" {
		t.Errorf("plain error: code %d, stderr %q", code, stderr.String())
	}
	stderr.Reset()
	if code := exitCode(&FlagError{Err: errString("bad")}, &stderr); code != exitUsage || stderr.String() != "Error: bad\ntry 'keystonectl --help'\n" {
		t.Errorf("FlagError: code %d, stderr %q", code, stderr.String())
	}
}

type errString string

func (e errString) Error() string { return string(e) }
