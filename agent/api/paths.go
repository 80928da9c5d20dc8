package api

// The local API's endpoints, as net/http patterns. Every answer
// that is not a stream is one JSON document; every error is an Error.
//
//	GET  /healthz                           200 {"status":"ok"}, or 503 with an Error
//	GET  /metrics                           Prometheus text format
//	GET  /v1/components                     []Component
//	GET  /v1/components/{name}              ComponentDetail
//	POST /v1/components/{name}/restart      Component, in its state after the action
//	POST /v1/components/{name}/stop         Component
//	POST /v1/components/{name}/start        Component
//	GET  /v1/components/{name}/logs         LogLine stream; ?tail=N (default 100), &follow=1
//	POST /v1/deployments                    DeploymentRequest → 202 DeploymentAccepted
//	                                        (200 with the plan and nothing applied when DryRun)
//	GET  /v1/deployments                    []Deployment, newest first; ?limit=N (default 20)
//	GET  /v1/deployments/{id}               Deployment with its steps
//	POST /v1/deployments/{id}/cancel        202 Deployment: stops at the next safe point, rolls back
//	POST /v1/deployments/rollback           202 DeploymentAccepted: re-applies the last successful one
//	POST /v1/plugins/{name}/run             []Metric
//	POST /v1/agent/update                   AgentUpdate (202): update the agent itself
//	GET  /v1/agent/update                   AgentUpdate: the last update, or 404
//	GET  /v1/events                         event stream (supervisor/events.Event objects):
//	                                        the recent ones (?limit=N, default 100), or with
//	                                        follow=1 every new one until the client goes away
const (
	PathHealthz     = "/healthz"
	PathMetrics     = "/metrics"
	PathComponents  = "/v1/components"
	PathDeployments = "/v1/deployments"
	PathRollback    = "/v1/deployments/rollback"
	PathPlugins     = "/v1/plugins"
	PathEvents      = "/v1/events"
	PathAgentUpdate = "/v1/agent/update"
)
