package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/keystone-edge/keystone/comms/message"
	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/store"
)

// previousJobs returns, for each of targets, the job that gives the device
// back what it runs now, for a rollout of a job of kind: a deployment
// rollout sends the manifest of the last deployment that SUCCEEDED on the
// device in an earlier rollout (as recorded in state), or else one made
// from its retained state (its components at the versions it reports,
// without configuration overrides); an agent update sends the agent
// version it reports. A device with neither is left out: its previous
// deployment is unknown. states are the retained states seen on the
// broker; those recorded in state fill the gaps.
func previousJobs(ctx context.Context, state *store.Fleet, kind string, targets []string,
	states map[string]message.State) (map[string]Template, error) {
	known := map[string]message.State{}
	recorded, err := state.DeviceStates(ctx)
	if err != nil {
		return nil, err
	}
	for _, d := range recorded {
		var st message.State
		if json.Unmarshal(d.Body, &st) == nil {
			known[d.ID] = st
		}
	}
	for id, st := range states {
		known[id] = st
	}
	var deployed map[string]store.FleetDeployment
	if kind == message.KindDeployment {
		if deployed, err = state.Deployments(ctx); err != nil {
			return nil, err
		}
	}
	out := map[string]Template{}
	for _, id := range targets {
		st, seen := known[id]
		switch kind {
		case message.KindDeployment:
			if d, ok := deployed[id]; ok {
				out[id] = Template{Kind: message.KindDeployment, Manifest: d.Manifest}
			} else if m, ok := manifestOf(st); seen && ok {
				out[id] = Template{Kind: message.KindDeployment, Manifest: m}
			}
		case message.KindAgentUpdate:
			if seen && st.AgentVersion != "" {
				out[id] = Template{Kind: message.KindAgentUpdate, Version: st.AgentVersion}
			}
		}
	}
	return out, nil
}

// manifestOf writes a deployment manifest of the components a device
// reports running, at their versions, with no configuration overrides;
// false when it reports none or the result is not a valid manifest (a
// component name or version a deployment cannot name).
func manifestOf(st message.State) (string, bool) {
	if len(st.Components) == 0 {
		return "", false
	}
	var b strings.Builder
	b.WriteString("# Made by the fleet controller from the device's reported state:\n")
	b.WriteString("# its components at their versions, without configuration overrides.\n")
	b.WriteString("format = 1\n")
	for _, c := range st.Components {
		fmt.Fprintf(&b, "\n[[components]]\nname = %q\nversion = %q\n", c.Name, c.Version)
	}
	if _, err := recipes.ParseManifest("previous deployment of "+st.DeviceID, []byte(b.String())); err != nil {
		return "", false
	}
	return b.String(), true
}

// deployed returns, when ev is a deployment job of rollout c SUCCEEDED
// on its device, the manifest the device now runs, to be recorded: the
// rollout's, or for its rollback job the previous one.
func deployed(c *Core, ev Event) (store.FleetDeployment, bool) {
	if ev.Kind != EventJobStatus || ev.Status != message.StatusSucceeded {
		return store.FleetDeployment{}, false
	}
	cfg := c.s.Config
	var t Template
	switch ev.JobID {
	case cfg.ID + "-" + ev.Device:
		t = cfg.Job
	case cfg.ID + "-" + ev.Device + "-rollback":
		t = cfg.Previous[ev.Device]
	default:
		return store.FleetDeployment{}, false
	}
	if _, target := c.index[ev.Device]; !target || t.Kind != message.KindDeployment || t.Manifest == "" {
		return store.FleetDeployment{}, false
	}
	return store.FleetDeployment{DeviceID: ev.Device, RolloutID: cfg.ID, JobID: ev.JobID, Manifest: t.Manifest,
		SucceededAt: ev.At}, true
}
