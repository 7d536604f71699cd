using ERCache.Tests.Infrastructure;

namespace ERCache.Tests;

/// <summary><see cref="EmbeddingModel"/>: the cache's calls without the look-up by name, following reloads.</summary>
public sealed class ModelHandleTests
{
    [Fact]
    public async Task A_handle_serves_exactly_what_the_cache_serves()
    {
        using var f = new CacheFixture();
        var model = f.Cache.GetModel("CTR"); // names are case-insensitive; the handle carries the configured one
        var vector = new float[4];

        var fresh = await model.GetAsync(7, vector);
        var direct = await f.Cache.GetAsync(CacheFixture.Model, 7, new float[4]);
        var results = new EmbeddingResult[2];
        var many = new float[8];
        await model.GetManyAsync(new long[] { 7, 8 }, many, results);

        Assert.Equal("ctr", model.Name);
        Assert.Equal(EmbeddingSource.Fresh, fresh.Source);
        Assert.Equal(EmbeddingSource.Direct, direct.Source);
        Assert.True(TestTower.BelongsTo(vector, 7));
        Assert.Equal((EmbeddingSource.Direct, EmbeddingSource.Fresh), (results[0].Source, results[1].Source));
        Assert.True(TestTower.BelongsTo(many.AsSpan(4, 4), 8));
        Assert.Equal(4, model.Policy.Dimensions);
        Assert.Throws<ArgumentException>(() => f.Cache.GetModel("nope"));
    }

    [Fact]
    public async Task A_handle_follows_a_reload_and_fails_once_its_model_is_removed()
    {
        using var host = new ConfiguredHost(ConfiguredHost.Json(ConfiguredHost.Model("ctr", version: "v1") + "," + ConfiguredHost.Model("other")));
        var model = host.Cache.GetModel("ctr");
        await model.GetAsync(7, new float[4]);

        host.Reload(ConfiguredHost.Json(ConfiguredHost.Model("ctr", version: "v2") + "," + ConfiguredHost.Model("other")));
        var afterVersion = await model.GetAsync(7, new float[4]);
        host.Reload(ConfiguredHost.Json(ConfiguredHost.Model("other")));

        Assert.Equal(EmbeddingSource.Fresh, afterVersion.Source); // v2 has new, empty tiers
        Assert.Equal("v2", afterVersion.ModelVersion);
        await Assert.ThrowsAsync<ArgumentException>(async () => await model.GetAsync(7, new float[4]));
    }

    [Fact]
    public async Task A_handle_of_a_disposed_cache_throws_ObjectDisposedException()
    {
        var f = new CacheFixture();
        var model = f.Cache.GetModel(CacheFixture.Model);
        f.Dispose();

        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await model.GetAsync(7, new float[4]));
    }

}
