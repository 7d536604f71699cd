using ERCache.Inference;
using ERCache.Testing;
using ERCache.Tests.Infrastructure;

namespace ERCache.Tests;

/// <summary>The operations API: push, remove, clear, and per-call options.</summary>
public sealed class OperationsTests
{
    internal const string Model = CacheFixture.Model;

    internal static float[] VectorOf(long user, int generation)
    {
        var row = new float[4];
        TestTower.Fill(row, user, generation);
        return row;
    }

    private static CacheFixture TwoModels(InferenceDispatcher? dispatcher = null) =>
        new(new Dictionary<string, Action<ModelOptions>?> { [Model] = null, ["cvr"] = null }, dispatcher: dispatcher);

    [Fact]
    public async Task A_pushed_vector_is_served_from_the_direct_tier_and_then_from_failover()
    {
        using var f = new CacheFixture();
        f.Cache.SetVector(Model, 5, VectorOf(5, 42));
        var (direct, vector) = await f.GetAsync(5);
        Assert.Equal(EmbeddingSource.Direct, direct.Source);
        Assert.Equal(TimeSpan.Zero, direct.Age);
        Assert.Equal(VectorOf(5, 42), vector);
        Assert.Equal(0, f.Tower.CallCount);

        f.Clock.Advance(TimeSpan.FromMinutes(2)); // past the direct TTL, within failover's
        f.Tower.PerUser = (_, _, _, _) => throw new InvalidOperationException("model down");
        var (failover, old) = await f.GetAsync(5);
        Assert.Equal(EmbeddingSource.Failover, failover.Source);
        Assert.Equal(VectorOf(5, 42), old);
    }

    [Fact]
    public void A_pushed_vector_is_validated_like_inference_output()
    {
        using var f = new CacheFixture();
        var shortVector = Assert.Throws<ArgumentException>(() => f.Cache.SetVector(Model, 1, new float[3]));
        Assert.Equal("vector", shortVector.ParamName);
        Assert.Contains("The vector for model 'ctr' has 3 values but the model's Dimensions is 4", shortVector.Message, StringComparison.Ordinal);

        var nan = Assert.Throws<ArgumentException>(() => f.Cache.SetVector(Model, 1, [1, 2, float.NaN, 4]));
        Assert.Contains("index 2 (NaN)", nan.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => f.Cache.SetVector("nope", 1, new float[4]));
        Assert.Equal(0, f.Cache.GetEntryCount(Model, TierKind.Direct));
    }

    [Fact]
    public async Task An_inference_running_when_a_vector_is_pushed_does_not_write_over_it()
    {
        var dispatcher = new ManualInferenceDispatcher();
        using var f = new CacheFixture(dispatcher: dispatcher);
        f.Tower.Generation = 1;
        var waiting = f.GetAsync(9); // inference queued, not run yet
        f.Cache.SetVector(Model, 9, VectorOf(9, 77));
        dispatcher.RunAll();
        var (fresh, vector) = await waiting;
        Assert.Equal(EmbeddingSource.Fresh, fresh.Source); // its caller still gets what it asked for
        Assert.Equal(1, TestTower.GenerationOf(vector));

        var (later, pushed) = await f.GetAsync(9);
        Assert.Equal(EmbeddingSource.Direct, later.Source);
        Assert.Equal(77, TestTower.GenerationOf(pushed));
    }

    [Fact]
    public async Task Removing_a_user_of_one_model_empties_both_tiers_of_that_model_only()
    {
        using var f = TwoModels();
        await f.GetAsync(3);
        await f.GetAsync(3, "cvr");
        await f.GetAsync(4);
        Assert.Equal(2, await f.Cache.RemoveAsync(Model, 3));
        Assert.Equal(0, await f.Cache.RemoveAsync(Model, 3));

        Assert.Equal(EmbeddingSource.Direct, (await f.GetAsync(3, "cvr")).Result.Source);
        Assert.Equal(EmbeddingSource.Direct, (await f.GetAsync(4)).Result.Source);
        f.Tower.PerUser = (_, _, _, _) => throw new InvalidOperationException("model down");
        var (gone, vector) = await f.GetAsync(3); // neither direct nor failover holds it any more
        Assert.Equal(EmbeddingSource.Fallback, gone.Source);
        Assert.Equal(new float[4], vector);
    }

    [Fact]
    public async Task Removing_a_user_of_every_model()
    {
        using var f = TwoModels();
        await f.GetAsync(3);
        await f.GetAsync(3, "cvr");
        Assert.Equal(4, await f.Cache.RemoveAsync(3));
        Assert.Equal(EmbeddingSource.Fresh, (await f.GetAsync(3)).Result.Source);
        Assert.Equal(EmbeddingSource.Fresh, (await f.GetAsync(3, "cvr")).Result.Source);
    }

    [Fact]
    public async Task An_inference_running_when_its_user_is_removed_is_not_written_afterwards()
    {
        var dispatcher = new ManualInferenceDispatcher();
        using var f = new CacheFixture(dispatcher: dispatcher);
        var waiting = f.GetAsync(9);
        Assert.Equal(0, await f.Cache.RemoveAsync(Model, 9));
        dispatcher.RunAll();
        Assert.Equal(EmbeddingSource.Fresh, (await waiting).Result.Source);
        Assert.Equal(0, f.Cache.GetEntryCount(Model, TierKind.Direct));
        Assert.Equal(0, f.Cache.GetEntryCount(Model, TierKind.Failover));

        var next = f.GetAsync(9); // a new inference, after the removal: cached as usual
        dispatcher.RunAll();
        await next;
        Assert.Equal(1, f.Cache.GetEntryCount(Model, TierKind.Direct));
    }

    [Theory]
    [InlineData(EvictionStrategy.Lru)]
    [InlineData(EvictionStrategy.Fifo)]
    [InlineData(EvictionStrategy.Sieve)]
    [InlineData(EvictionStrategy.MemoryCache)]
    public async Task Clearing_a_model_empties_its_tiers_and_the_slots_are_reused(EvictionStrategy eviction)
    {
        using var f = new CacheFixture(m =>
        {
            m.Direct.Eviction = eviction;
            m.Direct.Capacity = 8;
            m.Failover.Capacity = 8;
        });
        for (long u = 0; u < 8; u++)
        {
            await f.GetAsync(u);
        }

        Assert.Equal(16, f.Cache.Clear(Model));
        Assert.Equal(0, f.Cache.GetEntryCount(Model, TierKind.Direct));
        for (long u = 100; u < 108; u++)
        {
            Assert.Equal(EmbeddingSource.Fresh, (await f.GetAsync(u)).Result.Source);
        }

        for (long u = 100; u < 108; u++)
        {
            var (hit, vector) = await f.GetAsync(u);
            Assert.Equal(EmbeddingSource.Direct, hit.Source);
            Assert.True(TestTower.BelongsTo(vector, u));
        }

        Assert.Equal(0, f.Cache.GetTierStatistics(Model, TierKind.Direct)!.Value.Evictions); // freed slots, not evictions
        Assert.Equal(EmbeddingSource.Fresh, (await f.GetAsync(0)).Result.Source);
    }

    [Fact]
    public async Task MaxAge_stricter_than_the_TTL_treats_an_older_entry_as_a_miss()
    {
        using var f = new CacheFixture();
        await f.GetAsync(1);
        f.Clock.Advance(TimeSpan.FromSeconds(30));
        f.Tower.Generation = 2;
        var vector = new float[4];
        var loose = await f.Cache.GetAsync(Model, 1, vector, new EmbeddingRequestOptions { MaxAge = TimeSpan.FromMinutes(5) });
        Assert.Equal(EmbeddingSource.Direct, loose.Source); // looser than the TTL: the TTL still rules

        var strict = await f.Cache.GetAsync(Model, 1, vector, new EmbeddingRequestOptions { MaxAge = TimeSpan.FromSeconds(10) });
        Assert.Equal(EmbeddingSource.Fresh, strict.Source);
        Assert.Equal(2, TestTower.GenerationOf(vector));
        Assert.Equal(TimeSpan.Zero, (await f.GetAsync(1)).Result.Age); // the fresh vector was cached

        var ids = new long[] { 1, 2 };
        var results = new EmbeddingResult[2];
        await f.Cache.GetManyAsync(Model, ids, new float[8], results, new EmbeddingRequestOptions { MaxAge = TimeSpan.Zero });
        Assert.All(results, r => Assert.Equal(EmbeddingSource.Fresh, r.Source));

        var negative = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(
            () => f.Cache.GetAsync(Model, 1, vector, new EmbeddingRequestOptions { MaxAge = TimeSpan.FromSeconds(-1) }).AsTask());
        Assert.Contains("MaxAge must not be negative", negative.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ForceRefresh_runs_inference_and_caches_it_and_SkipFailover_answers_a_failure_with_the_fallback()
    {
        using var f = new CacheFixture(m => m.DefaultVector = [9, 9, 9, 9]);
        await f.GetAsync(1);
        f.Tower.Generation = 3;
        var vector = new float[4];
        var forced = await f.Cache.GetAsync(Model, 1, vector, new EmbeddingRequestOptions { ForceRefresh = true });
        Assert.Equal(EmbeddingSource.Fresh, forced.Source);
        Assert.Equal(3, TestTower.GenerationOf((await f.GetAsync(1)).Vector));

        f.Tower.PerUser = (_, _, _, _) => throw new InvalidOperationException("model down");
        var failover = await f.Cache.GetAsync(Model, 1, vector, new EmbeddingRequestOptions { ForceRefresh = true });
        Assert.Equal(EmbeddingSource.Failover, failover.Source);
        Assert.Equal(3, TestTower.GenerationOf(vector));

        var skipped = await f.Cache.GetAsync(Model, 1, vector, new EmbeddingRequestOptions { ForceRefresh = true, SkipFailover = true });
        Assert.Equal(EmbeddingSource.Fallback, skipped.Source);
        Assert.Equal(InferenceFailureCause.Error, skipped.FailureCause);
        Assert.Equal(new float[] { 9, 9, 9, 9 }, vector);

        var handle = f.Cache.GetModel(Model);
        Assert.Equal(EmbeddingSource.Fallback, (await handle.GetAsync(1, vector, new EmbeddingRequestOptions { ForceRefresh = true, SkipFailover = true })).Source);
    }

}
