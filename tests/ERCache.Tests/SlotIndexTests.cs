using ERCache.Storage;

namespace ERCache.Tests;

public sealed class SlotIndexTests
{
    /// <summary>Slots and the keys they hold, as a slab tier keeps them (key 0 = free in these tests).</summary>
    internal sealed class Slots(int capacity)
    {
        public readonly long[] Keys = new long[capacity];

        public long KeyOf(int slot) => Volatile.Read(ref Keys[slot]);
    }

    /// <summary>The reader protocol of SlabTier: probe, compare the key in full, confirm a miss by the shift version.</summary>
    internal static int LockFreeFind(SlotIndex index, Slots slots, long key, out bool confirmed)
    {
        int version = index.ShiftVersion;
        var probe = index.StartProbe(key);
        while (probe.MoveNext(out int slot))
        {
            if (slots.KeyOf(slot) == key)
            {
                confirmed = true;
                return slot;
            }
        }

        confirmed = (version & 1) == 0 && index.ShiftVersion == version;
        return -1;
    }

    [Fact]
    public void Random_adds_and_removes_agree_with_a_dictionary()
    {
        const int capacity = 5000;
        var slots = new Slots(capacity);
        var index = new SlotIndex(capacity, slots.KeyOf, seed: 99);
        var reference = new Dictionary<long, int>();
        var free = new Stack<int>(Enumerable.Range(0, capacity).Reverse());
        var rng = new Random(3);
        for (int step = 0; step < 200_000; step++)
        {
            long key = rng.Next(1, 8000) * 7919L; // spread, never 0
            if (reference.TryGetValue(key, out int slot))
            {
                if (rng.Next(2) == 0)
                {
                    index.Remove(key, slot);
                    slots.Keys[slot] = 0;
                    reference.Remove(key);
                    free.Push(slot);
                }
            }
            else if (free.TryPop(out slot))
            {
                slots.Keys[slot] = key;
                index.Add(key, slot);
                reference[key] = slot;
            }

            if (step % 5000 == 0)
            {
                foreach (var (k, s) in reference)
                {
                    Assert.Equal(s, index.Find(k));
                }
            }
        }

        Assert.Equal(reference.Count, index.Count);
        for (long k = 1; k < 8000; k++)
        {
            Assert.Equal(reference.TryGetValue(k * 7919L, out int s) ? s : -1, index.Find(k * 7919L));
        }

        Assert.True(index.AllocatedBytes <= ((capacity * 4L / 3) + 1) * (sizeof(uint) + sizeof(byte)), $"{index.AllocatedBytes} bytes"); // bucket + distance
    }

    [Fact]
    public void Keys_whose_probe_runs_collide_are_told_apart_by_the_full_key()
    {
        // A tiny table (capacity 8 -> 10 buckets) forces long shared runs; every key must still map to its own slot.
        var slots = new Slots(8);
        var index = new SlotIndex(8, slots.KeyOf, seed: 1);
        for (int s = 0; s < 8; s++)
        {
            slots.Keys[s] = 1000 + s;
            index.Add(1000 + s, s);
        }

        for (int s = 0; s < 8; s++)
        {
            Assert.Equal(s, index.Find(1000 + s));
        }

        Assert.Equal(-1, index.Find(999));
        index.Remove(1003, 3);
        slots.Keys[3] = 0;
        Assert.Equal(-1, index.Find(1003));
        Assert.All(new[] { 0, 1, 2, 4, 5, 6, 7 }, s => Assert.Equal(s, index.Find(1000 + s)));
    }

    [Fact]
    public void A_probe_overtaken_by_a_backward_shift_does_not_confirm_its_miss()
    {
        // The largest capacity leaves 4 tag bits, so keys that share a home bucket and a tag are easy to find
        // (in a short table of 1,024 buckets; the test holds three keys).
        const int capacity = SlotIndex.MaxCapacity, buckets = 1024;
        const ulong seed = 11;
        static (int Home, ulong Tag) Place(long key)
        {
            ulong h = SlotIndex.Hash(key, seed);
            return (SlotIndex.Home(h, buckets), h >> 60);
        }

        // A, B and C share a home; B and C share a tag too (so a probe for C stops at B), A does not.
        long c = 1;
        var (home, tag) = Place(c);
        var others = Enumerable.Range(2, 1_000_000).Select(k => (long)k).Where(k => Place(k).Home == home).ToList();
        long b = others.First(k => Place(k).Tag == tag);
        long a = others.First(k => Place(k).Tag != tag);

        var keys = new Dictionary<int, long> { [0] = a, [1] = b, [2] = c };
        var index = new SlotIndex(capacity, slot => keys[slot], seed, tableLength: buckets);
        index.Add(a, 0); // run: [A][B][C]
        index.Add(b, 1);
        index.Add(c, 2);

        int version = index.ShiftVersion;
        var probe = index.StartProbe(c);
        Assert.True(probe.MoveNext(out int candidate));
        Assert.Equal(1, candidate); // the reader is at B, about to look past it

        index.Remove(a, 0); // B and C shift back one bucket: C now sits where the reader has already been
        keys.Remove(0);

        Assert.False(probe.MoveNext(out _)); // the probe ran off the end of the run
        Assert.NotEqual(version, index.ShiftVersion); // ... and the version tells the reader to look again
        var retry = index.StartProbe(c);
        Assert.True(retry.MoveNext(out candidate) && (candidate == 2 || (retry.MoveNext(out candidate) && candidate == 2)));
    }

    [Fact]
    public void A_removal_that_moves_no_bucket_leaves_the_shift_version_alone()
    {
        // Readers only need the version when buckets move; left alone, its cache line stays in their caches.
        const int buckets = 1024;
        const ulong seed = 5;
        static int HomeOf(long key) => SlotIndex.Home(SlotIndex.Hash(key, seed), buckets);
        var candidates = Enumerable.Range(1, 200_000).Select(k => (long)k).ToList();
        long a = candidates.First(k => HomeOf(k) is > 10 and < 1000);
        int home = HomeOf(a);
        long sameHome = candidates.First(k => k != a && HomeOf(k) == home);     // sits right after A, moves back when A goes
        long nextHome = candidates.First(k => HomeOf(k) == home + 1);           // would sit at its own home
        long alone = candidates.First(k => Math.Abs(HomeOf(k) - home) > 5);     // a run of its own

        var keys = new Dictionary<int, long> { [0] = a, [1] = nextHome, [2] = alone, [3] = sameHome };
        var index = new SlotIndex(SlotIndex.MaxCapacity, slot => keys[slot], seed, tableLength: buckets);
        index.Add(a, 0);        // [A][N]: N at its own home, after A
        index.Add(nextHome, 1);
        index.Add(alone, 2);

        int version = index.ShiftVersion;
        index.Remove(alone, 2); // nothing after it in its run
        Assert.Equal(version, index.ShiftVersion);
        index.Remove(a, 0);     // N stays at its home: it moves nowhere
        Assert.Equal(version, index.ShiftVersion);
        Assert.Equal(1, index.Find(nextHome));
        Assert.Equal(-1, index.Find(a));

        index.Add(a, 0);        // A's home is free again: [A][N]
        index.Add(sameHome, 3); // [A][N][S]: S's home is A's, so S moves back when A goes
        index.Remove(a, 0);
        Assert.Equal(version + 2, index.ShiftVersion); // odd while shifting, even again after
        Assert.Equal(3, index.Find(sameHome));
        Assert.Equal(1, index.Find(nextHome));
        Assert.Equal(2, index.Count);
    }

    [Fact]
    public void A_removal_reads_no_key_back_while_distances_fit_a_byte_and_runs_longer_than_255_stay_findable()
    {
        // 400 keys sharing one home in a 1,000-bucket table: one run of 400, so the later ones sit 255 or more buckets
        // from home, where the index must read their key to find it; removals from the middle shift all of them.
        const int buckets = 1000;
        const ulong seed = 3;
        static int HomeOf(long key) => SlotIndex.Home(SlotIndex.Hash(key, seed), buckets);
        var shared = Enumerable.Range(1, 2_000_000).Select(k => (long)k).Where(k => HomeOf(k) == 500).Take(400).ToArray();
        var scattered = Enumerable.Range(3_000_000, 200).Select(k => (long)k).Where(k => Math.Abs(HomeOf(k) - 500) > 420).Take(100).ToArray();
        var keys = shared.Concat(scattered).ToArray();
        int keyReads = 0;
        var index = new SlotIndex(keys.Length, slot => { keyReads++; return keys[slot]; }, seed, tableLength: buckets);
        for (int slot = 0; slot < keys.Length; slot++)
        {
            index.Add(keys[slot], slot);
        }

        // Short runs only: removing scattered keys reads no key back (their runs hold no distance of 255).
        keyReads = 0;
        var removed = new HashSet<int>();
        for (int slot = shared.Length; slot < keys.Length; slot += 2)
        {
            index.Remove(keys[slot], slot);
            removed.Add(slot);
        }

        Assert.Equal(0, keyReads);

        // The long run: removals from its start shift buckets whose distance did not fit a byte; those are looked up.
        foreach (int slot in new[] { 0, 1, 100, 254, 255, 256, 300 })
        {
            index.Remove(keys[slot], slot);
            removed.Add(slot);
        }

        Assert.True(keyReads > 0);
        for (int slot = 0; slot < keys.Length; slot++)
        {
            Assert.Equal(removed.Contains(slot) ? -1 : slot, index.Find(keys[slot]));
        }

        Assert.Equal(keys.Length - removed.Count, index.Count);
    }

    [Fact]
    public void Keys_hash_as_XXH3_of_their_8_little_endian_bytes()
    {
        // xxHash's published XXH3-64 sanity vector for the first 8 bytes of its sanity buffer, seeds 0 and PRIME64.
        long sanityKey = BitConverter.ToInt64([0x00, 0x52, 0x92, 0x9b, 0xb7, 0x32, 0xa3, 0x24]);
        Assert.Equal(0x24CCC9ACAA9F65E4UL, SlotIndex.Hash(sanityKey, 0));
        Assert.Equal(0x8F973410999B8F6BUL, SlotIndex.Hash(sanityKey, 0x9E3779B185EBCA8DUL));

        var rng = new Random(7);
        for (int i = 0; i < 1000; i++)
        {
            long key = rng.NextInt64(long.MinValue, long.MaxValue);
            ulong seed = (ulong)rng.NextInt64();
            Assert.Equal(System.IO.Hashing.XxHash3.HashToUInt64(BitConverter.GetBytes(key), (long)seed), SlotIndex.Hash(key, seed));
        }
    }
}
