//! Chained jobs (`on_success` / `on_failure`): every link must name a job of
//! the plan, and no chain may lead back to where it started.
//!
//! The links form a graph that users write, as deep as they like (a chain of
//! 100,000 jobs is a valid plan), so no walk here recurses: the depth-first
//! search keeps its path on the heap, and work and output stay linear in the
//! number of links (a cycle's diagnostic names a bounded number of jobs).
//! Also the reverse graph, built once per plan: which jobs start each job
//! ([`super::Plan::chain_parents`]).
//! Pure: knows jobs and diagnostics, no clock, tokio or process.

use std::collections::{HashMap, HashSet};

use super::Job;
use crate::job::{ChainLink, Diagnostic};

/// A cycle longer than this is named by its first and last members only:
/// a diagnostic per back edge that listed every member would make the
/// output quadratic in the chain's length.
const CYCLE_NAMES_SHOWN: usize = 12;

/// Checks `on_success` / `on_failure` (the issue 5 chains): every named job
/// must exist, and no chain may lead back to where it started (a run would
/// start itself forever). A link that fails either check is reported with its
/// line and left out; the jobs themselves stay.
pub(super) fn check_chains(jobs: &mut [Job], diagnostics: &mut Vec<Diagnostic>) {
    let index: HashMap<String, usize> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.name.clone(), i))
        .collect();
    drop_unknown_targets(jobs, &index, diagnostics);
    let cycles = find_cycles(jobs, &index);
    let mut closing: HashSet<(usize, &str)> = HashSet::new();
    let mut messages = Vec::with_capacity(cycles.len());
    for cycle in &cycles {
        let origin = links(&jobs[cycle.from])
            .find(|l| l.job == cycle.target)
            .map(|l| l.origin.clone());
        messages.push(Diagnostic::error(
            origin,
            format!(
                "chained jobs form a cycle: {}; a run would start itself again without end. \
                 Remove one of these `on_success`/`on_failure` links",
                cycle.names
            ),
        ));
        closing.insert((cycle.from, cycle.target.as_str()));
    }
    diagnostics.extend(messages);
    // One pass over each job's links, however many cycles it closes.
    let closes = |at: usize, target: &str| closing.contains(&(at, target));
    for (at, job) in jobs.iter_mut().enumerate() {
        // Only a job that loses a link gets a copy of its own definition.
        if !links(job).any(|l| closes(at, &l.job)) {
            continue;
        }
        let spec = std::sync::Arc::make_mut(&mut job.spec);
        spec.on_success.retain(|l| !closes(at, &l.job));
        spec.on_failure.retain(|l| !closes(at, &l.job));
    }
}

/// Both kinds of link of `job`, `on_success` first.
fn links(job: &Job) -> impl Iterator<Item = &ChainLink> {
    job.spec.on_success.iter().chain(&job.spec.on_failure)
}

/// The reverse of the chain graph: for each job that some job chains to, the
/// positions of the jobs whose outcome starts it, in plan order and each once
/// (a job that names another under both keys is one parent). One pass over
/// the links; jobs nobody chains to have no entry.
pub(super) fn chain_parents(jobs: &[Job]) -> HashMap<String, Vec<usize>> {
    let mut parents: HashMap<String, Vec<usize>> = HashMap::new();
    for (at, job) in jobs.iter().enumerate() {
        for link in links(job) {
            match parents.get_mut(&link.job) {
                // A parent's links are visited together, so a repeat is last.
                Some(list) if list.last() == Some(&at) => {}
                Some(list) => list.push(at),
                None => {
                    parents.insert(link.job.clone(), vec![at]);
                }
            }
        }
    }
    parents
}

fn drop_unknown_targets(
    jobs: &mut [Job],
    index: &HashMap<String, usize>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    for job in jobs.iter_mut() {
        // Only a job that loses a link gets a copy of its own definition.
        if links(job).all(|link| index.contains_key(&link.job)) {
            continue;
        }
        let name = job.name.clone();
        let spec = std::sync::Arc::make_mut(&mut job.spec);
        for (key, links) in [
            ("on_success", &mut spec.on_success),
            ("on_failure", &mut spec.on_failure),
        ] {
            links.retain(|link| {
                let known = index.contains_key(&link.job);
                if !known {
                    diagnostics.push(Diagnostic::error(
                        Some(link.origin.clone()),
                        format!(
                            "job {name}: `{key}` names job {:?}, which is not defined; \
                             use the name of a job from any source (see `jobrun list`)",
                            link.job
                        ),
                    ));
                }
                known
            });
        }
    }
}

/// A link that closes a cycle: from job `from` to `target`, with the names
/// of the cycle's members for the diagnostic.
struct Cycle {
    from: usize,
    target: String,
    names: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Mark {
    New,
    /// On the current path, at this position.
    OnPath(usize),
    Done,
}

/// One job being visited: its targets and how far through them the walk is.
struct Frame {
    at: usize,
    targets: Vec<usize>,
    next: usize,
}

/// Depth-first search over both kinds of link, in plan order; an edge back to
/// a job on the current path closes a cycle, reported once per such edge.
/// Iterative: the path is a heap-allocated stack, not the call stack.
fn find_cycles(jobs: &[Job], index: &HashMap<String, usize>) -> Vec<Cycle> {
    let targets = |at: usize| -> Vec<usize> {
        let mut out: Vec<usize> = links(&jobs[at])
            .filter_map(|l| index.get(&l.job).copied())
            .collect();
        out.dedup();
        out
    };
    let mut marks = vec![Mark::New; jobs.len()];
    let mut cycles = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    for start in 0..jobs.len() {
        if marks[start] != Mark::New {
            continue;
        }
        marks[start] = Mark::OnPath(0);
        stack.push(Frame {
            at: start,
            targets: targets(start),
            next: 0,
        });
        while let Some(frame) = stack.last_mut() {
            let Some(&next) = frame.targets.get(frame.next) else {
                marks[frame.at] = Mark::Done;
                stack.pop();
                continue;
            };
            frame.next += 1;
            let at = frame.at;
            match marks[next] {
                Mark::New => {
                    marks[next] = Mark::OnPath(stack.len());
                    stack.push(Frame {
                        at: next,
                        targets: targets(next),
                        next: 0,
                    });
                }
                Mark::OnPath(from) => {
                    let members = stack[from..].iter().map(|f| jobs[f.at].name.as_str());
                    cycles.push(Cycle {
                        from: at,
                        target: jobs[next].name.clone(),
                        names: cycle_names(members, stack.len() - from, &jobs[next].name),
                    });
                }
                Mark::Done => {}
            }
        }
    }
    cycles
}

/// `a -> b -> c -> a`; a long cycle shows its start and end around a count,
/// so each diagnostic stays short.
fn cycle_names<'a>(members: impl Iterator<Item = &'a str>, len: usize, target: &str) -> String {
    let mut names: Vec<String> = Vec::new();
    if len <= CYCLE_NAMES_SHOWN {
        names.extend(members.map(str::to_string));
    } else {
        let head = CYCLE_NAMES_SHOWN / 2;
        let tail = CYCLE_NAMES_SHOWN - head;
        let mut members = members;
        names.extend(members.by_ref().take(head).map(str::to_string));
        names.push(format!("... ({} more)", len - head - tail));
        names.extend(members.skip(len - head - tail).map(str::to_string));
    }
    names.push(target.to_string());
    names.join(" -> ")
}

#[cfg(test)]
mod tests {
    use super::super::Plan;
    use crate::job::{ChainLink, Command, JobSpec, Origin, Severity, SourceKind, SourceSet};

    fn job(name: &str, links: &[&str]) -> JobSpec {
        let origin = Origin::new("/etc/jobrun/jobs.yaml", 1);
        let mut spec = JobSpec::new(
            Command::Shell(format!("true {name}")),
            SourceKind::Yaml,
            origin.clone(),
        );
        spec.name = Some(name.into());
        spec.on_success = links
            .iter()
            .map(|l| ChainLink {
                job: (*l).into(),
                origin: origin.clone(),
            })
            .collect();
        spec
    }

    /// `j0 -> j1 -> ... -> j{n-1}`, closed back to `j0` when `cycle`.
    fn chain(n: usize, cycle: bool) -> SourceSet {
        let jobs = (0..n)
            .map(|i| {
                let next = if i + 1 < n {
                    Some(format!("j{}", i + 1))
                } else if cycle {
                    Some("j0".to_string())
                } else {
                    None
                };
                job(
                    &format!("j{i}"),
                    &next.iter().map(String::as_str).collect::<Vec<_>>(),
                )
            })
            .map(std::sync::Arc::new)
            .collect();
        SourceSet {
            jobs,
            ..Default::default()
        }
    }

    /// Builds on a thread with a small stack: a walk that recursed once per
    /// link would overflow it (and abort the process) long before the end.
    fn build_on_small_stack(set: SourceSet) -> (Plan, Vec<crate::job::Diagnostic>) {
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || Plan::build(set, chrono_tz::UTC))
            .expect("spawning a thread")
            .join()
            .expect("the build finishes without overflowing its stack")
    }

    #[test]
    fn a_long_chain_does_not_overflow_the_stack() {
        let (plan, diagnostics) = build_on_small_stack(chain(100_000, false));
        assert!(diagnostics.is_empty(), "{:?}", diagnostics.first());
        assert_eq!(plan.jobs().len(), 100_000);
        let last_link = &plan.get("j99998").expect("j99998").spec.on_success;
        assert_eq!(last_link[0].job, "j99999");
        assert_eq!(parents(&plan, "j99999"), ["j99998"]);
        assert!(parents(&plan, "j0").is_empty());
    }

    #[test]
    fn chain_parents_and_get_agree_on_every_job() {
        // Names out of order (get searches them sorted, chain_parents keeps
        // plan positions): each parent found is the job `get` gives for its
        // name, and it does name the child.
        let set = SourceSet {
            jobs: vec![
                job("zeta", &["alpha", "mid"]),
                job("mid", &["alpha"]),
                job("alpha", &[]),
                job("beta", &["zeta"]),
                job("aardvark", &["mid", "zeta"]),
            ]
            .into_iter()
            .map(std::sync::Arc::new)
            .collect(),
            ..Default::default()
        };
        let (plan, diagnostics) = Plan::build(set, chrono_tz::UTC);
        assert!(diagnostics.is_empty(), "{:?}", diagnostics.first());
        let mut links = 0;
        for child in plan.jobs() {
            let found = plan.get(&child.name).expect("every job is found by name");
            assert!(std::ptr::eq(found, child), "{}", child.name);
            for parent in plan.chain_parents(&child.name) {
                let by_name = plan.get(&parent.name).expect("a parent is a job");
                assert!(std::ptr::eq(by_name, parent), "{}", parent.name);
                assert!(
                    parent.spec.on_success.iter().any(|l| l.job == child.name),
                    "{} -> {}",
                    parent.name,
                    child.name
                );
                links += 1;
            }
        }
        assert_eq!(links, 6);
        assert_eq!(parents(&plan, "alpha"), ["zeta", "mid"]);
        assert_eq!(parents(&plan, "zeta"), ["beta", "aardvark"]);
    }

    fn parents<'a>(plan: &'a Plan, job: &str) -> Vec<&'a str> {
        plan.chain_parents(job).map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn chain_parents_are_the_jobs_naming_a_job_in_plan_order_each_once() {
        // `late` is defined after its child and names it under both keys;
        // `bad` names a job that does not exist; `x` and `y` form a cycle.
        let mut early = job("early", &["child"]);
        early.on_failure = early.on_success.clone();
        let child = job("child", &["grandchild"]);
        let grandchild = job("grandchild", &[]);
        let mut late = job("late", &["child", "child"]);
        late.on_failure = job("late", &["child", "grandchild"]).on_success;
        let bad = job("bad", &["ghost"]);
        let x = job("x", &["y"]);
        let y = job("y", &["x"]);
        let (plan, _) = Plan::build(
            SourceSet {
                jobs: [early, child, grandchild, late, bad, x, y]
                    .into_iter()
                    .map(std::sync::Arc::new)
                    .collect(),
                ..Default::default()
            },
            chrono_tz::UTC,
        );
        assert_eq!(parents(&plan, "child"), ["early", "late"]);
        assert_eq!(parents(&plan, "grandchild"), ["child", "late"]);
        assert!(parents(&plan, "early").is_empty(), "nobody chains to it");
        assert!(
            parents(&plan, "ghost").is_empty(),
            "the unknown link is left out"
        );
        assert!(parents(&plan, "nope").is_empty(), "not a job at all");
        assert_eq!(parents(&plan, "y"), ["x"]);
        assert!(
            parents(&plan, "x").is_empty(),
            "the link closing the cycle is left out, so it starts nothing"
        );
        assert!(Plan::default().chain_parents("child").next().is_none());
    }

    #[test]
    fn chain_parents_of_a_job_many_jobs_chain_to_stay_linear() {
        // 50,000 jobs all chaining to one: one pass builds the graph, and a
        // look-up walks only that job's parents.
        let n = 50_000;
        let mut jobs: Vec<JobSpec> = (0..n).map(|i| job(&format!("p{i}"), &["sink"])).collect();
        jobs.push(job("sink", &[]));
        let (plan, diagnostics) = Plan::build(
            SourceSet {
                jobs: jobs.into_iter().map(std::sync::Arc::new).collect(),
                ..Default::default()
            },
            chrono_tz::UTC,
        );
        assert!(diagnostics.is_empty(), "{:?}", diagnostics.first());
        let sink = parents(&plan, "sink");
        assert_eq!(sink.len(), n);
        assert_eq!((sink[0], sink[n - 1]), ("p0", "p49999"));
        assert!(parents(&plan, "p7").is_empty());
    }

    #[test]
    fn a_long_cycle_is_reported_once_with_a_short_message() {
        let (plan, diagnostics) = build_on_small_stack(chain(100_000, true));
        let errors: Vec<String> = diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(ToString::to_string)
            .collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains(
                "chained jobs form a cycle: j0 -> j1 -> j2 -> j3 -> j4 -> j5 -> ... (99988 more) \
                 -> j99994 -> j99995 -> j99996 -> j99997 -> j99998 -> j99999 -> j0;"
            ),
            "{errors:?}"
        );
        assert!(
            plan.get("j99999")
                .expect("j99999")
                .spec
                .on_success
                .is_empty(),
            "the link closing the cycle is left out"
        );
        assert_eq!(plan.get("j0").expect("j0").spec.on_success[0].job, "j1");
    }

    #[test]
    fn many_links_back_into_a_long_path_stay_linear() {
        // Every job of a 20,000-long chain also links back to j0: 20,000
        // cycles, each reported with a bounded message.
        let n = 20_000;
        let jobs = (0..n)
            .map(|i| {
                let next = format!("j{}", i + 1);
                let links: Vec<&str> = if i + 1 < n {
                    vec![&next, "j0"]
                } else {
                    vec!["j0"]
                };
                job(&format!("j{i}"), &links)
            })
            .map(std::sync::Arc::new)
            .collect();
        let (_, diagnostics) = build_on_small_stack(SourceSet {
            jobs,
            ..Default::default()
        });
        assert_eq!(diagnostics.len(), n);
        let bytes: usize = diagnostics.iter().map(|d| d.message.len()).sum();
        assert!(bytes < n * 300, "{bytes} bytes of diagnostics");
    }
}
