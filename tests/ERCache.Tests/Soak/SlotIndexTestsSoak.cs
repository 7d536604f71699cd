using ERCache.Storage;
using ERCache.Tests.Infrastructure;
using static ERCache.Tests.SlotIndexTests;

namespace ERCache.Tests;

/// <summary>The real-thread and real-clock tests of <see cref="SlotIndexTests"/>.</summary>
[Collection(SoakDefinition.Name)]
public sealed class SlotIndexTestsSoak
{
    [Fact]
    public void Readers_never_confirm_a_miss_for_a_key_that_stays_while_writers_churn_and_shift_around_it()
    {
        const int capacity = 4096, pinned = 512;
        var slots = new Slots(capacity);
        var index = new SlotIndex(capacity, slots.KeyOf, seed: 5);
        var gate = new object();
        for (int s = 0; s < pinned; s++)
        {
            slots.Keys[s] = s + 1; // keys 1..512 stay for the whole test
            index.Add(s + 1, s);
        }

        long falseMisses = 0, wrongSlots = 0, lookups = 0, churn = 0, retries = 0;
        const int ChurnPerWriter = 150_000; // bounded by iterations; readers run until the writers are done
        var writers = Enumerable.Range(0, 2).Select(w => (Action)(() =>
        {
            var rng = new Random(w);
            var mine = new List<(long Key, int Slot)>();
            int next = pinned + (w * ((capacity - pinned) / 2));
            var free = new Stack<int>(Enumerable.Range(next, (capacity - pinned) / 2));
            for (int op = 0; op < ChurnPerWriter; op++)
            {
                lock (gate)
                {
                    if (free.Count > 0 && (mine.Count == 0 || rng.Next(2) == 0))
                    {
                        int slot = free.Pop();
                        long key = 1_000_000 + rng.NextInt64(1L << 40);
                        if (index.Find(key) >= 0)
                        {
                            free.Push(slot);
                            continue;
                        }

                        Volatile.Write(ref slots.Keys[slot], key);
                        index.Add(key, slot);
                        mine.Add((key, slot));
                    }
                    else
                    {
                        int pick = rng.Next(mine.Count);
                        var (key, slot) = mine[pick];
                        mine[pick] = mine[^1];
                        mine.RemoveAt(mine.Count - 1);
                        index.Remove(key, slot);
                        Volatile.Write(ref slots.Keys[slot], 0);
                        free.Push(slot);
                    }

                    churn++;
                }
            }
        }));
        var readers = Enumerable.Range(0, 3).Select(r => (Action<Func<bool>>)(writing =>
        {
            var rng = new Random(100 + r);
            while (writing())
            {
                long key = rng.Next(1, pinned + 1);
                int slot = LockFreeFind(index, slots, key, out bool confirmed);
                Interlocked.Increment(ref lookups);
                if (slot < 0 && !confirmed)
                {
                    Interlocked.Increment(ref retries); // the protocol says "look again": fine, not a miss
                }
                else if (slot < 0)
                {
                    Interlocked.Increment(ref falseMisses);
                }
                else if (slot != key - 1)
                {
                    Interlocked.Increment(ref wrongSlots);
                }
            }
        })).ToArray();
        CheckedThread.RunAll(writers, readers);

        Assert.Equal(0, falseMisses);
        Assert.Equal(0, wrongSlots);
        Assert.True(churn > 10_000, $"only {churn} adds and removes");
        Assert.True(lookups > 10_000, $"only {lookups} lookups");
        for (int s = 0; s < pinned; s++)
        {
            Assert.Equal(s, index.Find(s + 1));
        }
    }
}
