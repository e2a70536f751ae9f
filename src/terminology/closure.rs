//! The transitive closure of the IS-A graph.
//!
//! Ids are mapped to dense indices; nodes are visited in topological order
//! (parents before children, Kahn's algorithm), and each node's ancestor set is
//! the sorted, deduplicated merge of its parents and their ancestor sets. Memory
//! is the closure itself (4 bytes per row while building) plus the graph; for a
//! full UK edition (~350k concepts, ~1.2M IS-A rows) that is a few hundred MB.
//! A cycle is an error that names the concepts on it; the closure never
//! contains a concept as its own ancestor.

use super::{Error, Result};

/// (descendant, ancestor) pairs, sorted by descendant then ancestor.
pub fn closure(isa: &[(u64, u64)]) -> Result<Vec<(u64, u64)>> {
    let mut nodes: Vec<u64> = isa.iter().flat_map(|&(c, p)| [c, p]).collect();
    nodes.sort_unstable();
    nodes.dedup();
    let index = |id: u64| nodes.binary_search(&id).expect("node listed") as u32;
    let n = nodes.len();

    // Parents and children as compressed adjacency lists.
    let mut edges: Vec<(u32, u32)> = isa.iter().map(|&(c, p)| (index(c), index(p))).collect();
    edges.sort_unstable();
    edges.dedup();
    let mut parent_start = vec![0usize; n + 1];
    for &(c, _) in &edges {
        parent_start[c as usize + 1] += 1;
    }
    for i in 0..n {
        parent_start[i + 1] += parent_start[i];
    }
    let parents: Vec<u32> = edges.iter().map(|&(_, p)| p).collect();
    let mut by_parent: Vec<(u32, u32)> = edges.iter().map(|&(c, p)| (p, c)).collect();
    by_parent.sort_unstable();
    let mut child_start = vec![0usize; n + 1];
    for &(p, _) in &by_parent {
        child_start[p as usize + 1] += 1;
    }
    for i in 0..n {
        child_start[i + 1] += child_start[i];
    }
    let children: Vec<u32> = by_parent.iter().map(|&(_, c)| c).collect();

    let mut pending: Vec<usize> = (0..n)
        .map(|i| parent_start[i + 1] - parent_start[i])
        .collect();
    let mut queue: Vec<u32> = (0..n as u32)
        .filter(|&i| pending[i as usize] == 0)
        .collect();
    let mut ancestors: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut done = 0usize;
    let mut scratch = Vec::new();
    while let Some(v) = queue.pop() {
        done += 1;
        let v = v as usize;
        scratch.clear();
        for &p in &parents[parent_start[v]..parent_start[v + 1]] {
            scratch.push(p);
            scratch.extend_from_slice(&ancestors[p as usize]);
        }
        scratch.sort_unstable();
        scratch.dedup();
        ancestors[v] = scratch.clone();
        for &c in &children[child_start[v]..child_start[v + 1]] {
            pending[c as usize] -= 1;
            if pending[c as usize] == 0 {
                queue.push(c);
            }
        }
    }
    if done < n {
        return Err(Error::Cycle {
            cycle: find_cycle(&pending, &parents, &parent_start)
                .into_iter()
                .map(|i| nodes[i as usize])
                .collect(),
        });
    }
    let total: usize = ancestors.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(total);
    for (v, anc) in ancestors.iter().enumerate() {
        // Ancestor indices are sorted, and index order is id order.
        out.extend(anc.iter().map(|&a| (nodes[v], nodes[a as usize])));
    }
    Ok(out)
}

/// A cycle among nodes Kahn's algorithm could not place. Every such node has a
/// parent that is also unplaced, so walking parents must revisit a node.
fn find_cycle(pending: &[usize], parents: &[u32], parent_start: &[usize]) -> Vec<u32> {
    let start = pending
        .iter()
        .position(|&p| p > 0)
        .expect("an unplaced node") as u32;
    let mut path = vec![start];
    let mut seen = std::collections::HashMap::from([(start, 0usize)]);
    let mut v = start;
    loop {
        let v_us = v as usize;
        let next = parents[parent_start[v_us]..parent_start[v_us + 1]]
            .iter()
            .copied()
            .find(|&p| pending[p as usize] > 0)
            .expect("an unplaced node has an unplaced parent");
        if let Some(&at) = seen.get(&next) {
            let mut cycle = path[at..].to_vec();
            cycle.push(next);
            return cycle;
        }
        seen.insert(next, path.len());
        path.push(next);
        v = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn naive(isa: &[(u64, u64)]) -> Vec<(u64, u64)> {
        fn walk(id: u64, isa: &[(u64, u64)], out: &mut BTreeSet<u64>) {
            for &(c, p) in isa {
                if c == id && out.insert(p) {
                    walk(p, isa, out);
                }
            }
        }
        let nodes: BTreeSet<u64> = isa.iter().flat_map(|&(c, p)| [c, p]).collect();
        let mut out = Vec::new();
        for &n in &nodes {
            let mut anc = BTreeSet::new();
            walk(n, isa, &mut anc);
            out.extend(anc.into_iter().map(|a| (n, a)));
        }
        out
    }

    #[test]
    fn diamond() {
        let isa = [(4, 2), (4, 3), (2, 1), (3, 1)];
        assert_eq!(
            closure(&isa).unwrap(),
            vec![(2, 1), (3, 1), (4, 1), (4, 2), (4, 3)]
        );
    }

    #[test]
    fn cycle_is_named() {
        let isa = [(10, 1), (20, 10), (30, 20), (10, 30)];
        let err = closure(&isa).unwrap_err();
        match &err {
            Error::Cycle { cycle } => {
                assert_eq!(cycle.first(), cycle.last());
                assert_eq!(cycle.len(), 4, "{cycle:?}");
            }
            other => panic!("{other}"),
        }
        assert!(err.to_string().contains(" IS-A "), "{err}");
    }

    proptest! {
        #[test]
        fn equals_naive_walk(
            n in 1usize..40,
            raw in prop::collection::vec((0usize..40, 0usize..40), 0..120),
            salt in 1u64..1_000_000,
        ) {
            // Child index > parent index keeps the graph acyclic; ids are scrambled.
            let id = |i: usize| (i as u64).wrapping_mul(7919).wrapping_add(salt) % 10_000_000;
            let isa: Vec<(u64, u64)> = raw
                .into_iter()
                .map(|(a, b)| (a % n, b % n))
                .filter(|(a, b)| a != b)
                .map(|(a, b)| if a > b { (id(a), id(b)) } else { (id(b), id(a)) })
                .collect();
            prop_assert_eq!(closure(&isa).unwrap(), naive(&isa));
        }
    }
}
