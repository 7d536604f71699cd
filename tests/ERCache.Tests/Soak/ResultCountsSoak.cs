using ERCache.Models;
using ERCache.Tests.Infrastructure;

namespace ERCache.Tests;

/// <summary><see cref="ResultCounts"/> on real threads: threads that count at once share stripes (one per processor), and
/// every count must land.</summary>
[Collection(SoakDefinition.Name)]
public sealed class ResultCountsSoak
{
    [Fact]
    public void Hammer_counts_from_several_threads_are_exact_and_a_reader_never_sees_one_go_back()
    {
        // Eight threads of four million counts, so that threads on one stripe count at once with few processors: with a
        // plain add in place of the interlocked one, four threads of a million lost no count here in three runs, these
        // lost about 2 million of 32 million in each of five.
        const int Threads = 8, Rounds = 4_000_000;
        var counts = new ResultCounts();
        using var start = new ManualResetEventSlim();
        int counting = Threads;
        var workers = Enumerable.Range(0, Threads).Select(w => new Thread(() =>
        {
            start.Wait();
            for (int i = 0; i < Rounds; i++)
            {
                counts.Count(EmbeddingSource.Direct); // every round: one hit,
                if (i % 4 == w % 4)
                {
                    counts.Count(EmbeddingSource.Fallback, 3); // a quarter of rounds: three fallbacks in one add
                }
            }

            Interlocked.Decrement(ref counting);
        })).ToList();
        workers.ForEach(t => t.Start());

        long reads = 0, wentBack = 0, lastDirect = 0, lastFallbacks = 0;
        start.Set();
        while (Volatile.Read(ref counting) > 0 || reads == 0)
        {
            long direct = counts.Of(EmbeddingSource.Direct), fallbacks = counts.Fallbacks;
            if (direct < lastDirect || fallbacks < lastFallbacks || fallbacks % 3 != 0)
            {
                wentBack++; // a count undone, or a batch's add seen in part
            }

            (lastDirect, lastFallbacks) = (direct, fallbacks);
            reads++;
            Thread.Yield(); // leave the cores to the counting threads, so that they count at once
        }

        workers.ForEach(t => t.Join());
        Assert.Equal(0, wentBack);
        Assert.Equal((long)Threads * Rounds, counts.Of(EmbeddingSource.Direct));
        Assert.Equal(3L * Threads * (Rounds / 4), counts.Fallbacks);
    }

    [Fact]
    public void Hammer_regional_counts_from_several_threads_are_exact_and_never_show_more_refused_than_found()
    {
        const int Threads = 4, Lookups = 1_000_000;
        var counts = new ResultCounts();
        using var start = new ManualResetEventSlim();
        int counting = Threads;
        var workers = Enumerable.Range(0, Threads).Select(w => new Thread(() =>
        {
            start.Wait();
            for (int i = 0; i < Lookups; i++)
            {
                counts.CountRegional(found: 2, refused: i % 2 == w % 2 ? 2 : 0); // every other lookup: all refused
            }

            Interlocked.Decrement(ref counting);
        })).ToList();
        workers.ForEach(t => t.Start());

        long reads = 0, moreRefused = 0;
        start.Set();
        while (Volatile.Read(ref counting) > 0 || reads == 0)
        {
            long refused = counts.RegionalRefused, found = counts.RegionalFound; // the health check's order
            if (refused > found)
            {
                moreRefused++;
            }

            reads++;
            Thread.Yield();
        }

        workers.ForEach(t => t.Join());
        Assert.Equal(0, moreRefused);
        Assert.Equal((2L * Threads * Lookups, (long)Threads * Lookups), (counts.RegionalFound, counts.RegionalRefused));
    }
}
