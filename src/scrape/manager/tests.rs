use super::*;

#[test]
fn the_buffer_pool_reuses_buffers_and_frees_huge_ones() {
    let pool = BufferPool::default();
    let mut b = pool.take();
    b.extend_from_slice(&[7; 1000]);
    let cap = b.capacity();
    pool.give(b);
    let b = pool.take();
    assert!(b.is_empty());
    assert_eq!(b.capacity(), cap);
    pool.give(vec![0; BufferPool::MAX_KEPT_CAPACITY + 1]);
    assert_eq!(pool.take().capacity(), 0);
}
