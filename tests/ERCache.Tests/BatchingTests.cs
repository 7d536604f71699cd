using ERCache.Tests.Infrastructure;

namespace ERCache.Tests;

public sealed class BatchingTests
{
    [Theory]
    [InlineData(16)]
    [InlineData(64)]
    [InlineData(500)]
    [InlineData(7)]
    public async Task GetMany_over_1000_users_with_half_cached_calls_inference_only_for_the_misses_in_full_batches(int maxBatchSize)
    {
        using var f = new CacheFixture(m => m.Inference.MaxBatchSize = maxBatchSize);
        long[] users = Enumerable.Range(0, 1000).Select(i => (long)i).ToArray();
        long[] cached = users.Where(u => u % 2 == 0).ToArray();
        await f.Cache.GetManyAsync(CacheFixture.Model, cached, new float[cached.Length * 4], new EmbeddingResult[cached.Length]);
        int warmCalls = f.Tower.CallCount;
        var vectors = new float[1000 * 4];
        var results = new EmbeddingResult[1000];

        await f.Cache.GetManyAsync(CacheFixture.Model, users, vectors, results);

        var calls = f.Tower.Calls.Skip(warmCalls).ToArray();
        Assert.Equal((500 + maxBatchSize - 1) / maxBatchSize, calls.Length);
        Assert.All(calls, c => Assert.InRange(c.Length, 1, maxBatchSize));
        Assert.Equal(users.Where(u => u % 2 == 1).Order(), calls.SelectMany(c => c).Order());
        for (int i = 0; i < 1000; i++)
        {
            Assert.Equal(i % 2 == 0 ? EmbeddingSource.Direct : EmbeddingSource.Fresh, results[i].Source);
            Assert.True(TestTower.BelongsTo(vectors.AsSpan(i * 4, 4), i));
        }
    }

    [Fact]
    public async Task GetMany_with_every_user_cached_completes_synchronously_without_inference()
    {
        using var f = new CacheFixture();
        long[] users = [1, 2, 3];
        await f.Cache.GetManyAsync(CacheFixture.Model, users, new float[12], new EmbeddingResult[3]);

        var pending = f.Cache.GetManyAsync(CacheFixture.Model, users, new float[12], new EmbeddingResult[3]);

        Assert.True(pending.IsCompletedSuccessfully);
        Assert.Single(f.Tower.Calls);
    }

    [Fact]
    public async Task A_failing_batch_fails_only_its_own_users()
    {
        using var f = new CacheFixture(m => m.Inference.MaxBatchSize = 2);
        f.Tower.Whole = (batch, _) =>
        {
            if (batch.UserIds.Span.Contains(3))
            {
                throw new InvalidOperationException("this batch fails");
            }

            for (int i = 0; i < batch.Count; i++)
            {
                TestTower.Fill(batch.GetRow(i).Span, batch.UserIds.Span[i], 0);
            }

            return ValueTask.CompletedTask;
        };
        var results = new EmbeddingResult[4];

        await f.Cache.GetManyAsync(CacheFixture.Model, new long[] { 1, 2, 3, 4 }, new float[16], results);

        Assert.Equal([EmbeddingSource.Fresh, EmbeddingSource.Fresh, EmbeddingSource.Fallback, EmbeddingSource.Fallback], results.Select(r => r.Source));
        Assert.Equal(2, f.Metrics.Sum("ercache.inference.failures", ("cause", "error")));
    }

    [Fact]
    public async Task An_empty_request_does_nothing()
    {
        using var f = new CacheFixture();

        await f.Cache.GetManyAsync(CacheFixture.Model, ReadOnlyMemory<long>.Empty, Memory<float>.Empty, Memory<EmbeddingResult>.Empty);

        Assert.Empty(f.Tower.Calls);
    }
}
