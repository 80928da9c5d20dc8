package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/store"
)

// TestConcurrentWritersAndReaders runs writers and readers at once, from
// two Store values on the same file (as two processes would), under -race.
// Every write must succeed (one writer plus busy_timeout, never
// SQLITE_BUSY), every read must see a consistent prefix, and the final
// counts must add up.
func TestConcurrentWritersAndReaders(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s1, path := openTemp(t)
	s2, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	stores := []*store.Store{s1, s2}

	const (
		writers  = 6
		perWrite = 25
		readers  = 3
	)
	if err := s1.CreateDeployment(ctx, store.Deployment{ID: "d", Status: store.DeploymentInProgress}); err != nil {
		t.Fatal(err)
	}

	errs := make(chan error, writers+readers)
	var writersWG, readersWG sync.WaitGroup
	for w := range writers {
		writersWG.Add(1)
		go func() {
			defer writersWG.Done()
			s := stores[w%2]
			comp := fmt.Sprintf("c%d", w)
			for i := range perWrite {
				if err := s.UpsertComponent(ctx, store.Component{Name: comp, Version: "1.0.0", Kind: "process",
					State: "RUNNING", Restarts: i}); err != nil {
					errs <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
				if _, err := s.AppendStep(ctx, "d", store.Step{Name: "step", Component: comp, Status: store.StepDone}); err != nil {
					errs <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
				// An event and its outbox message, together.
				if err := s.Tx(ctx, func(tx *store.Tx) error {
					if _, err := tx.AppendEvent(ctx, store.Event{Component: comp, Kind: "state", ToState: fmt.Sprint(i)}); err != nil {
						return err
					}
					_, err := tx.EnqueueOutbox(ctx, store.Message{Topic: "events/" + comp, QoS: 0})
					return err
				}); err != nil {
					errs <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
			}
		}()
	}

	stop := make(chan struct{})
	for r := range readers {
		readersWG.Add(1)
		go func() {
			defer readersWG.Done()
			s := stores[r%2]
			for {
				select {
				case <-stop:
					return
				default:
				}
				steps, err := s.Steps(ctx, "d")
				if err != nil {
					errs <- fmt.Errorf("reader %d: %w", r, err)
					return
				}
				for i, st := range steps {
					if st.Seq != int64(i+1) {
						errs <- fmt.Errorf("reader %d: step %d has seq %d: a hole or a duplicate", r, i+1, st.Seq)
						return
					}
				}
				evs, err := s.Events(ctx, 0, 0)
				if err != nil {
					errs <- fmt.Errorf("reader %d: %w", r, err)
					return
				}
				for i := 1; i < len(evs); i++ {
					if evs[i].Seq <= evs[i-1].Seq {
						errs <- fmt.Errorf("reader %d: events out of order", r)
						return
					}
				}
				if _, err := s.ListComponents(ctx); err != nil {
					errs <- fmt.Errorf("reader %d: %w", r, err)
					return
				}
			}
		}()
	}

	writersWG.Wait()
	close(stop)
	readersWG.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	const total = writers * perWrite
	steps, err := s2.Steps(ctx, "d")
	if err != nil || len(steps) != total {
		t.Errorf("steps = %d, %v; want %d", len(steps), err, total)
	}
	evs, err := s1.Events(ctx, 0, 0)
	if err != nil || len(evs) != total {
		t.Errorf("events = %d, %v; want %d", len(evs), err, total)
	}
	if n, err := s2.OutboxLen(ctx); err != nil || n != total {
		t.Errorf("outbox = %d, %v; want %d", n, err, total)
	}
	comps, err := s1.ListComponents(ctx)
	if err != nil || len(comps) != writers {
		t.Fatalf("components = %d, %v; want %d", len(comps), err, writers)
	}
	for _, c := range comps {
		if c.Restarts != perWrite-1 {
			t.Errorf("%s restarts = %d, want the last write %d", c.Name, c.Restarts, perWrite-1)
		}
	}
	if err := s1.Check(ctx); err != nil {
		t.Error(err)
	}
}
