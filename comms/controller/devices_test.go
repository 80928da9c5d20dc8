package controller

import (
	"testing"

	"github.com/keystone-edge/keystone/comms/message"
)

func TestSeqsDropWhatWasSeenAndWhatIsOutOfTheWindow(t *testing.T) {
	var s seqs
	for _, step := range []struct {
		seq uint64
		new bool
	}{
		{1, true}, {2, true}, {2, false}, {1, false}, {4, true}, {3, true}, {3, false},
		// A jump slides the window: anything older than seqWindow behind
		// the newest counts as seen.
		{5000, true}, {5000 - seqWindow, false}, {5000 - seqWindow + 1, true}, {4999, true}, {4999, false},
	} {
		if got := s.add(step.seq); got != step.new {
			t.Fatalf("add(%d) = %v, want %v", step.seq, got, step.new)
		}
	}
	if len(s.seen) > seqWindow {
		t.Errorf("%d seqs remembered, more than the window of %d", len(s.seen), seqWindow)
	}
}

func TestSetStateKeepsTheLatest(t *testing.T) {
	var d device
	st := func(seq uint64, online bool) message.State {
		return message.State{DeviceID: "pos-12", Seq: seq, Online: online}
	}
	for i, step := range []struct {
		st      message.State
		present bool
		applies bool
		seq     uint64
	}{
		{st(5, true), true, true, 5},
		{st(5, true), true, false, 5},     // the retained state again
		{st(4, true), true, false, 5},     // a late resend
		{st(3, false), true, true, 3},     // the will, made at connect time
		{st(6, true), true, true, 6},      // back online
		{st(0, true), true, true, 0},      // a state without seq always applies
		{message.State{}, false, true, 0}, // cleared
		{message.State{}, false, false, 0},
	} {
		if got := d.setState(step.st, step.present); got != step.applies || d.state.Seq != step.seq {
			t.Errorf("step %d: applies %v, seq %d; want %v, %d", i, got, d.state.Seq, step.applies, step.seq)
		}
	}
	if d.hasState {
		t.Error("a cleared state is still held")
	}
}
