// Package graph resolves a deployment's dependency graph: from the root
// components a manifest pins and the recipes on offer, it picks exactly one
// version of every component needed, checks version ranges, missing
// dependencies and cycles, and answers the orders the supervisor works in —
// start layers (independent components together), the stop order, and who
// must stop when a component leaves RUNNING.
//
// It is a pure function of its inputs: it reads no files, fetches nothing,
// runs nothing and keeps no state between calls. A resolved Graph is
// immutable; the deployment engine owns it, never a global.
package graph
