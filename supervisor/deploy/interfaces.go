package deploy

import (
	"context"

	"github.com/keystone-edge/keystone/ota"
	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/store"
	"github.com/keystone-edge/keystone/supervisor"
)

// Supervisor is what the engine asks of the supervisor; *supervisor.Supervisor
// implements it.
type Supervisor interface {
	// Apply makes comps the supervised set: removed and changed components
	// are stopped (dependents first) and replaced, new ones installed and
	// started in dependency order. It returns once the stops are over.
	Apply(ctx context.Context, comps []*supervisor.Component) error
	// WaitReady waits until every named component is RUNNING (and healthy),
	// or fails wrapping supervisor.ErrComponentFailed as soon as one has
	// failed, or with ctx's error.
	WaitReady(ctx context.Context, names []string) error
	// Snapshot returns every supervised component's status.
	Snapshot() []supervisor.Status
}

// Fetcher is what the engine asks of ota; *ota.Fetcher implements it.
type Fetcher interface {
	// Fetch makes every artifact of rs present and verified, and places
	// each version folder, touching nothing that runs.
	Fetch(ctx context.Context, rs []*recipes.Recipe, progress ota.ProgressFunc) error
	// GC shrinks the artifact cache, keeping the artifacts of keep.
	GC(ctx context.Context, keep []*recipes.Recipe) (ota.GCResult, error)
	// RemoveVersion deletes a placed version folder.
	RemoveVersion(name, version string) error
	// VersionDir is the folder name@version is placed in.
	VersionDir(name, version string) string
}

// Repository resolves a component version the manifest gives no recipe
// for; *ota.Repository implements it.
type Repository interface {
	Resolve(ctx context.Context, name, version string) (*ota.Resolved, error)
}

// Store is the part of the store the engine records deployments in;
// *store.Store implements it.
type Store interface {
	CreateDeployment(ctx context.Context, d store.Deployment) error
	GetDeployment(ctx context.Context, id string) (store.Deployment, error)
	ListDeployments(ctx context.Context, limit int) ([]store.Deployment, error)
	UnfinishedDeployments(ctx context.Context) ([]store.Deployment, error)
	LastSuccessfulDeployment(ctx context.Context) (store.Deployment, error)
	UpdateDeploymentStatus(ctx context.Context, id string, u store.DeploymentUpdate) error
	AppendStep(ctx context.Context, deploymentID string, st store.Step) (int64, error)
	Steps(ctx context.Context, id string) ([]store.Step, error)
	GetValue(ctx context.Context, key string) ([]byte, error)
	Tx(ctx context.Context, fn func(tx *store.Tx) error) error
}
