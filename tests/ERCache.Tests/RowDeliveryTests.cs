using ERCache.Inference;
using ERCache.Tests.Infrastructure;

namespace ERCache.Tests;

/// <summary>
/// A miss's row goes straight from the delegate's batch into the buffer of the caller that started the inference when
/// nobody else waits for it (no array per user), and never reaches a buffer whose caller stopped waiting (a caller that
/// left at its deadline: <see cref="SlaTests"/>).
/// </summary>
public sealed class RowDeliveryTests
{
    [Fact]
    public async Task A_cancelled_caller_alone_on_its_inference_never_has_its_buffer_written()
    {
        using var f = new CacheFixture();
        var release = new TaskCompletionSource();
        f.Tower.Gate = release.Task;
        using var cts = new CancellationTokenSource();
        var buffer = new float[4];
        Array.Fill(buffer, -1f);

        var leaving = f.Cache.GetAsync(CacheFixture.Model, 9, buffer, cts.Token).AsTask();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => leaving.WaitAsync(TimeSpan.FromSeconds(10)));
        release.SetResult();
        await f.Cache.WhenIdleAsync(CacheFixture.Model).WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(1, f.Tower.CallCount);
        Assert.All(buffer, v => Assert.Equal(-1f, v));
        Assert.Equal(1, f.Cache.GetEntryCount(CacheFixture.Model, TierKind.Direct)); // the inference itself went on
    }

    [Fact]
    public async Task A_batch_with_one_user_twice_serves_both_positions_the_same_fresh_row()
    {
        using var f = new CacheFixture();
        f.Tower.Generation = 4;
        long[] users = [3, 8, 3];
        var vectors = new float[3 * 4];
        var results = new EmbeddingResult[3];

        await f.Cache.GetManyAsync(CacheFixture.Model, users, vectors, results);

        Assert.All(results, r => Assert.Equal(EmbeddingSource.Fresh, r.Source));
        Assert.Equal(vectors.AsSpan(0, 4).ToArray(), vectors.AsSpan(8, 4).ToArray());
        Assert.True(TestTower.BelongsTo(vectors.AsSpan(0, 4), 3) && TestTower.GenerationOf(vectors.AsSpan(0, 4)) == 4);
        Assert.True(TestTower.BelongsTo(vectors.AsSpan(4, 4), 8));
        Assert.Equal(1, f.Tower.CallCount);
    }

    [Fact]
    public void A_row_delivered_to_its_creator_alone_takes_no_more_callers_and_a_detached_creator_gets_no_row()
    {
        var creator = new float[3];
        var delivered = new PendingInference(1, long.MaxValue, creatorRow: creator);
        Assert.True(delivered.TryDeliverToCreator([1f, 2f, 3f]));
        Assert.Equal([1f, 2f, 3f], creator);
        Assert.False(delivered.TryJoin()); // nothing to share: a later caller starts its own inference
        Assert.True(delivered.DetachCreator()); // the creator, giving up now, learns it was served

        var joined = new PendingInference(2, long.MaxValue, creatorRow: new float[3]);
        Assert.True(joined.TryJoin());
        Assert.False(joined.TryDeliverToCreator([1f, 2f, 3f])); // two waiters: the row goes out as an array

        var gone = new float[3];
        var detached = new PendingInference(3, long.MaxValue, creatorRow: gone);
        Assert.False(detached.DetachCreator());
        Assert.False(detached.TryDeliverToCreator([1f, 2f, 3f]));
        Assert.Equal(new float[3], gone);
        Assert.True(detached.TryJoin()); // others may still wait for it

        var background = new PendingInference(4, long.MaxValue, BackgroundWork.Refresh);
        Assert.True(background.TryDeliverToCreator([1f, 2f, 3f])); // nobody waits: no array either
        Assert.False(background.TryJoin());
    }

    [Fact]
    public async Task A_creator_timed_out_learns_whether_its_row_came_and_callers_who_joined_get_the_result()
    {
        var served = new PendingInference(1, long.MaxValue, creatorRow: new float[3]);
        Assert.True(served.TryDeliverToCreator([1f, 2f, 3f]));
        served.TimeOutCreator();
        Assert.Equal(InferenceOutcome.DeliveredToCreator, await served.Task); // the row came in time: served fresh

        var queued = new PendingInference(2, long.MaxValue, creatorRow: new float[3]);
        queued.TimeOutCreator();
        Assert.Equal(InferenceFailureCause.Overload, (await queued.Task).Cause); // never started: shed

        var running = new PendingInference(3, long.MaxValue, creatorRow: new float[3]);
        Assert.True(running.TryJoin());
        var joined = running.JoinedTask;
        running.MarkStarted();
        running.TimeOutCreator();
        Assert.Equal(InferenceFailureCause.Timeout, (await running.Task).Cause);
        Assert.False(joined.IsCompleted); // the caller who joined waits for the row
        running.Complete(new InferenceOutcome(InferenceFailureCause.None, [1f, 2f, 3f]));
        var shared = (await joined).Vector;
        Assert.Equal([1f, 2f, 3f], shared!);
        Assert.Equal(InferenceFailureCause.Timeout, (await running.Task).Cause); // the creator's answer stands
    }

    [Fact]
    public async Task A_lean_miss_allocates_at_most_512_bytes_with_no_array_for_its_vector()
    {
        // 256 dimensions: an array per vector would be 1,048 bytes, twice the bound, in every miss. A cache of its own,
        // not the fixture's: the test tower records each call (an array per miss) and FakeTimeProvider's timers allocate
        // when re-armed, and neither is the cache's. No step depends on time (the deadline is a minute away).
        var model = CacheFixture.DefaultModel(256);
        model.Inference.RunInline = true;
        model.Inference.Timeout = TimeSpan.FromMinutes(1);
        model.Direct.Capacity = 100_000;
        model.Failover.Enabled = false;
        var options = new ERCacheOptions { Models = { [CacheFixture.Model] = model } };
        var tower = new DelegateInference(static (batch, _) =>
        {
            for (int i = 0; i < batch.Count; i++)
            {
                TestTower.Fill(batch.GetRow(i).Span, batch.UserIds.Span[i], 0);
            }

            return ValueTask.CompletedTask;
        });
        using var cache = EmbeddingCache.Create(
            options, new Dictionary<string, IEmbeddingInference> { [CacheFixture.Model] = tower }, new EmbeddingCacheServices { Dispatcher = InferenceDispatcher.Inline });
        var buffer = new float[256];
        long user = 1;
        for (int i = 0; i < 200; i++)
        {
            await Miss(cache, user++, buffer); // warm up: JIT, tiering, the spare batch and call
        }

        // Up to three windows of 1,000 misses (as the hit test: a one-off of the runtime does not repeat).
        var windows = new List<long>();
        for (int window = 0; window < 3 && (windows.Count == 0 || windows[^1] > 512 * 1000); window++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 1000; i++)
            {
                await Miss(cache, user++, buffer);
            }

            windows.Add(GC.GetAllocatedBytesForCurrentThread() - before);
        }

        Assert.True(windows[^1] <= 512 * 1000, $"bytes allocated by 1,000 misses, per window: {string.Join(", ", windows)}");
        Assert.True(TestTower.BelongsTo(buffer, user - 1));
    }

    /// <summary>One miss, checked without xunit's asserts, which allocate.</summary>
    private static async ValueTask Miss(EmbeddingCache cache, long user, float[] buffer)
    {
        var pending = cache.GetAsync(CacheFixture.Model, user, buffer);
        if (!pending.IsCompletedSuccessfully || (await pending).Source != EmbeddingSource.Fresh)
        {
            throw new InvalidOperationException("an inline miss of a synchronous tower completes fresh before GetAsync returns");
        }
    }
}
