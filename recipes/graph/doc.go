// Package graph resolves a deployment's dependency graph: from the root
// components a manifest pins and the recipes on offer, it picks exactly one
// version of every component needed, checks version ranges, missing
// dependencies and cycles, and answers the edges: what each component needs,
// what needs it, and who must stop when it leaves RUNNING.
//
// It offers no start or stop order: the supervisor orders starts and stops
// as it goes, from these same edges (each component's hard and soft
// dependencies) and from what is ready at the moment, which a static order
// computed here could not know.
//
// It is a pure function of its inputs: it reads no files, fetches nothing,
// runs nothing and keeps no state between calls. A resolved Graph is
// immutable; the deployment engine owns it, never a global.
package graph
