using ERCache.Inference;
using ERCache.Regional;
using ERCache.Testing;
using ERCache.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace ERCache.Tests;

/// <summary>A removal against an inference of the same user still running on another host.</summary>
public sealed class RemovalRaceTests
{
    private const string Model = CacheFixture.Model;

    /// <summary>
    /// Host B's inference of user 6 is running when host A removes the user. The store deletes the user, and before A
    /// announces the removal, B's call completes (the clock a little later) and B flushes its row. B's pending
    /// inference was not invalidated (it hears of the removal only from the announcement), so its row is written and
    /// queued; stamped with the call's completion it was newer than the removal, the store took it, and A then served
    /// the removed user from the store (the three-host hammer caught this about once in seven CI runs). Stamped with
    /// the call's start, it is older than the removal, and the store refuses it.
    /// </summary>
    [Fact]
    public async Task An_inference_elsewhere_that_completes_between_the_store_deletion_and_the_announcement_does_not_bring_the_user_back()
    {
        TestThread.LeaveSynchronizationContext(); // the cache reacts inside each step (see TestThread)
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 12, 5, 12, 0, 0, TimeSpan.Zero));
        var store = new RemovalHook(new InMemoryRegionalStore(clock));
        var towerA = new TestTower { Generation = 1 };
        var towerB = new TestTower { Generation = 1 };
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        towerB.Gate = release.Task;
        await using var a = Host(clock, store, towerA);
        await using var b = Host(clock, store, towerB);
        await a.WhenReadyAsync();
        await b.WhenReadyAsync();

        var running = b.GetAsync(Model, 6, new float[4]).AsTask(); // B's inference of user 6 waits at the gate
        Assert.False(running.IsCompleted);
        store.AfterRemove = async () =>
        {
            // The store has deleted the user; the other hosts have not heard yet. B's call completes now, a little later.
            clock.Advance(TimeSpan.FromMilliseconds(10));
            release.SetResult();
            await running;
            await b.FlushRegionalWritesAsync();
        };
        await a.RemoveAsync(Model, 6);

        towerA.PerUser = (_, batch, i, _) => { batch.Fail(i); return ValueTask.CompletedTask; };
        var vector = new float[4];
        var after = await a.GetAsync(Model, 6, vector);
        Assert.NotEqual(EmbeddingSource.Regional, after.Source); // B's row, computed before the removal, came back
    }

    private static EmbeddingCache Host(FakeTimeProvider clock, IRegionalStore store, TestTower tower)
    {
        var options = new ERCacheOptions { Models = { [Model] = CacheFixture.DefaultModel(4) }, Regional = new RegionalOptions { Invalidation = true } };
        return EmbeddingCache.Create(
            options, new Dictionary<string, IEmbeddingInference> { [Model] = tower },
            new EmbeddingCacheServices { TimeProvider = clock, Dispatcher = InferenceDispatcher.Inline, RegionalStore = store });
    }

    /// <summary>The in-memory store and channel, running <see cref="AfterRemove"/> once a removal has deleted its data and
    /// before it returns (before the removing host announces it).</summary>
    private sealed class RemovalHook(InMemoryRegionalStore inner) : WrappedRegionalStore(inner)
    {
        public Func<Task>? AfterRemove { get; set; }

        public override async Task RemoveAsync(long userId, string? field, long removedAtUnixMs, TimeSpan remember, CancellationToken cancellationToken)
        {
            await Inner.RemoveAsync(userId, field, removedAtUnixMs, remember, cancellationToken);
            if (AfterRemove is { } after)
            {
                AfterRemove = null;
                await after();
            }
        }
    }
}
