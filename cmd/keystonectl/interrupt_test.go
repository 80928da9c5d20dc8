package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestUntilSignalAbandonsACommandThatIgnoresItsContext(t *testing.T) {
	signals := make(chan os.Signal, 1)
	release := make(chan struct{})
	defer close(release)
	var stderr bytes.Buffer
	signals <- syscall.SIGTERM
	code := untilSignal(signals, time.Millisecond, &stderr, func(context.Context) int {
		<-release // busy with work that cannot be canceled, such as a parse
		return exitOK
	})
	if code != 143 {
		t.Errorf("exit code = %d, want 143 (128 + SIGTERM)", code)
	}
	if got := stderr.String(); got != "Error: interrupted by SIGTERM\n" {
		t.Errorf("stderr = %q", got)
	}
}

func TestUntilSignalLetsACanceledCommandSayItsOwnLastWord(t *testing.T) {
	signals := make(chan os.Signal, 1)
	var stderr bytes.Buffer
	signals <- syscall.SIGINT
	code := untilSignal(signals, time.Hour, &stderr, func(ctx context.Context) int {
		<-ctx.Done()
		stderr.WriteString("stopped waiting\n")
		return exitError
	})
	if code != exitError || stderr.String() != "stopped waiting\n" {
		t.Errorf("code %d, stderr %q: want the command's own code and message", code, stderr.String())
	}
}

func TestUntilSignalSecondSignalEndsAtOnce(t *testing.T) {
	signals := make(chan os.Signal, 2)
	release := make(chan struct{})
	defer close(release)
	signals <- syscall.SIGINT
	signals <- syscall.SIGINT
	var stderr bytes.Buffer
	code := untilSignal(signals, time.Hour, &stderr, func(context.Context) int {
		<-release
		return exitOK
	})
	if code != 130 {
		t.Errorf("exit code = %d, want 130 (128 + SIGINT)", code)
	}
}

// A FIFO named on the command line, or as an import, used to block
// keystonectl in its open forever, deaf to SIGTERM. It is refused now; the
// binary is also sent SIGTERM, which must end it in any case.
func TestBinaryRecipeValidateNeverHangsOnAFIFO(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe.recipe.toml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "imports.recipe.toml"), strings.Replace(helloRecipe, "format = 1", "format = 1\nimports = [\"pipe.recipe.toml\"]", 1))
	for _, file := range []string{"pipe.recipe.toml", "imports.recipe.toml"} {
		t.Run(file, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(bin, "recipe", "validate", file)
			cmd.Dir, cmd.Stdout, cmd.Stderr = dir, &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-done:
				case <-time.After(10 * time.Second): // hang guard
					_ = cmd.Process.Kill()
					<-done
					t.Fatalf("keystonectl recipe validate %s ignored SIGTERM", file)
				}
			}
			if code := cmd.ProcessState.ExitCode(); code != exitError {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, exitError, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), "not a regular file") {
				t.Errorf("stdout should say the FIFO is not a regular file:\n%s", stdout.String())
			}
		})
	}
}
