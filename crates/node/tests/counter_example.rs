//! The embedding example (`examples/counter.rs`) runs in the test suite: three members
//! replicate a counter, and the example fails unless every member ends at the same sum.

#[path = "../examples/counter.rs"]
mod counter;

#[test]
fn the_counter_example_replicates_on_three_members() {
    assert_eq!(counter::main(), Ok(()));
}
