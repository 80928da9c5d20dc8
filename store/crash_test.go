package store_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/store"
)

// crashChildEnv, when set to a database path, turns the test binary into
// the crash test's child: it writes checkpoints to that database until it is
// killed.
const crashChildEnv = "KEYSTONE_STORE_CRASH_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		os.Exit(crashChild(path))
	}
	os.Exit(m.Run())
}

// crashChild appends checkpoints in a loop. Each one is a step, an outbox
// message carrying the step's seq and a component row counting them, in one
// transaction; only after that transaction commits does it print
// "committed <step seq> <outbox seq>". It ends when stdout breaks (the parent
// is gone) or after a minute, so it can never outlive a failed test for long.
func crashChild(path string) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := store.Open(ctx, path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	defer s.Close()
	err = s.CreateDeployment(ctx, store.Deployment{ID: "crash", Manifest: "format = 1", Status: store.DeploymentInProgress})
	if err != nil && !errors.Is(err, store.ErrExists) {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	if _, err := fmt.Println("ready"); err != nil {
		return 0
	}
	for ctx.Err() == nil {
		var step, msg int64
		err := s.Tx(ctx, func(tx *store.Tx) error {
			var err error
			step, err = tx.AppendStep(ctx, "crash", store.Step{Name: "checkpoint", Status: store.StepDone})
			if err != nil {
				return err
			}
			msg, err = tx.EnqueueOutbox(ctx, store.Message{Topic: "crash", Payload: []byte(strconv.FormatInt(step, 10)), QoS: 1})
			if err != nil {
				return err
			}
			return tx.UpsertComponent(ctx, store.Component{Name: "crash", Version: "1", Kind: "process", State: "RUNNING", Restarts: int(step)})
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 2
		}
		if _, err := fmt.Printf("committed %d %d\n", step, msg); err != nil {
			return 0
		}
	}
	return 3
}

// crashRun is what one child reported before it was killed.
type crashRun struct {
	readyAfter time.Duration   // from start to "ready"; 0 if it never got there
	committed  map[int64]int64 // step seq -> outbox seq
}

// TestCrashKeepsCommittedCheckpoints kills a child writing checkpoints with
// SIGKILL at random moments, many times over, and after each kill reopens
// the database: it must pass integrity_check and hold every checkpoint the
// child reported committed, each with its outbox message (the transaction
// is all or nothing), with no hole in the step numbers.
func TestCrashKeepsCommittedCheckpoints(t *testing.T) {
	const kills = 60
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("KEYSTONE_CRASH_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("kill moments from seed %d (set KEYSTONE_CRASH_SEED to replay)", seed)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))

	path := filepath.Join(t.TempDir(), "crash.db")
	all := map[int64]int64{}
	withCommits := 0
	startup := 100 * time.Millisecond // how long a child takes to get ready; learnt as we go
	for i := range kills {
		run := runAndKill(ctx, t, path, rng, startup)
		if run.readyAfter > 0 {
			startup = run.readyAfter
		}
		for step, msg := range run.committed {
			all[step] = msg
		}
		if len(run.committed) > 0 {
			withCommits++
		}
		verifyAfterCrash(ctx, t, path, all)
		if t.Failed() {
			t.Fatalf("after kill %d of %d", i+1, kills)
		}
	}
	t.Logf("%d kills, %d of them after at least one commit; %d checkpoints reported committed, all present",
		kills, withCommits, len(all))
	if withCommits < kills/2 {
		t.Errorf("only %d of %d kills came after a commit; the test is not exercising durability", withCommits, kills)
	}
}

// runAndKill starts a child on path and SIGKILLs it at a random moment:
// a quarter of the time somewhere within the child's usual start-up time
// (during exec, open, WAL recovery or migration), otherwise after a random
// number of reported commits plus a random delay shorter than a commit
// (mid-transaction, mid-fsync).
func runAndKill(ctx context.Context, t *testing.T, path string, rng *rand.Rand, startup time.Duration) crashRun {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	// The reader goroutine ends at EOF, which comes when the child dies.
	lines := make(chan string)
	go func() {
		defer close(lines)
		br := bufio.NewReader(stdout)
		for {
			line, err := br.ReadString('\n')
			if err != nil { // a line cut by the kill was never reported whole
				return
			}
			lines <- strings.TrimSuffix(line, "\n")
		}
	}()

	run := crashRun{committed: map[int64]int64{}}
	record := func(line string) {
		if line == "ready" {
			run.readyAfter = time.Since(started)
			return
		}
		var step, msg int64
		if _, err := fmt.Sscanf(line, "committed %d %d", &step, &msg); err != nil {
			t.Errorf("child said %q: %v", line, err)
			return
		}
		run.committed[step] = msg
	}

	var killAfter <-chan time.Time
	wantCommits := -1
	if rng.IntN(4) == 0 {
		killAfter = time.After(time.Duration(rng.Int64N(int64(startup) * 5 / 4)))
	} else {
		wantCommits = 1 + rng.IntN(10)
	}
	open := true
wait:
	for open {
		select {
		case line, ok := <-lines:
			if !ok {
				open = false
				break wait
			}
			record(line)
			if len(run.committed) == wantCommits {
				killAfter = time.After(time.Duration(rng.IntN(3_000)) * time.Microsecond)
			}
		case <-killAfter:
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("kill: %v", err)
	}
	for line := range lines { // what the child wrote before it died
		record(line)
	}
	err = cmd.Wait()
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child was not killed by SIGKILL (wait: %v, ctx: %v); it said:\n%s", err, ctx.Err(), stderr.String())
	}
	_, _ = io.Copy(io.Discard, stdout)
	return run
}

// verifyAfterCrash reopens the database and checks it against every
// checkpoint reported committed so far.
func verifyAfterCrash(ctx context.Context, t *testing.T, path string, committed map[int64]int64) {
	t.Helper()
	s, err := store.Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	if err := s.Check(ctx); err != nil {
		t.Fatalf("integrity after kill: %v", err)
	}
	steps, err := s.Steps(ctx, "crash")
	if err != nil {
		t.Fatal(err)
	}
	present := map[int64]bool{}
	for i, st := range steps {
		if st.Seq != int64(i+1) {
			t.Fatalf("step %d has seq %d: a hole in the checkpoints", i+1, st.Seq)
		}
		present[st.Seq] = true
	}
	for step := range committed {
		if !present[step] {
			t.Errorf("checkpoint %d was reported committed but is gone", step)
		}
	}
	msgs, err := s.PendingOutbox(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != len(steps) {
		t.Errorf("%d steps but %d outbox messages: a transaction was split", len(steps), len(msgs))
	}
	bySeq := map[int64]string{}
	for _, m := range msgs {
		bySeq[m.Seq] = string(m.Payload)
	}
	for step, msg := range committed {
		if got := bySeq[msg]; got != strconv.FormatInt(step, 10) {
			t.Errorf("outbox message %d = %q, want the committed step %d", msg, got, step)
		}
	}
	if len(steps) > 0 {
		c, err := s.GetComponent(ctx, "crash")
		if err != nil || c.Restarts != len(steps) {
			t.Errorf("component counter = %d, %v; want %d, the last step", c.Restarts, err, len(steps))
		}
	}
}
