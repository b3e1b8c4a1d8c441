//! An overlay network's per-host share of a DHCP range, DHCPv4's and DHCPv6's alike
//! (docs/architecture.md, "Overlay networks").

/// Part `index` of `count` of the range `start..=end` (addresses as numbers): contiguous
/// parts as equal as can be, the first ones one address longer; None when that part is
/// empty (a range shorter than `count`). An `index` past the last part is the last.
pub(crate) fn part(start: u128, end: u128, index: usize, count: usize) -> Option<(u128, u128)> {
    let count = count.max(1) as u128;
    let index = (index as u128).min(count - 1);
    // The whole IPv6 space is one more address than u128 counts.
    let size = (end - start).saturating_add(1);
    let (q, rem) = (size / count, size % count);
    let first = start + index * q + index.min(rem);
    let len = q + u128::from(index < rem);
    // The last part ends where the range does (also when the size saturated).
    let last = if index == count - 1 {
        end
    } else {
        first + len - 1
    };
    (len > 0).then_some((first, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_range_once_in_order() {
        for size in 1..=20u128 {
            for count in 1..=25usize {
                let parts: Vec<(u128, u128)> = (0..count)
                    .filter_map(|i| part(100, 100 + size - 1, i, count))
                    .collect();
                let all: Vec<u128> = parts.iter().flat_map(|&(s, e)| s..=e).collect();
                assert_eq!(all, (100..100 + size).collect::<Vec<_>>(), "{size}/{count}");
                let lens: Vec<u128> = parts.iter().map(|&(s, e)| e - s + 1).collect();
                let (min, max) = (lens.iter().min().unwrap(), lens.iter().max().unwrap());
                assert!(max - min <= 1, "{size}/{count}: {lens:?}");
            }
        }
        assert_eq!(part(0, u128::MAX, 1, 2), Some((1 << 127, u128::MAX)));
        assert_eq!(part(5, 9, 7, 2), part(5, 9, 1, 2), "past the last part");
    }
}
