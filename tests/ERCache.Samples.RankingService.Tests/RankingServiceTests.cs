using Microsoft.Extensions.Time.Testing;
using System.Net;
using System.Net.Http.Json;
using System.Numerics.Tensors;
using System.Text.Json;
using System.Text.Json.Serialization;
using ERCache.Testing;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace ERCache.Samples.RankingService.Tests;

/// <summary>The sample service in memory, on a manual clock (so no deadline passes unless a test moves time).</summary>
public sealed class ServiceFixture : WebApplicationFactory<Program>
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { Converters = { new JsonStringEnumConverter() } };

    public FakeTimeProvider Clock { get; } = new();

    public TowerRegistry Towers => Services.GetRequiredService<TowerRegistry>();

    protected override void ConfigureWebHost(Microsoft.AspNetCore.Hosting.IWebHostBuilder builder) =>
        builder.ConfigureServices(services =>
        {
            services.RemoveAll<TimeProvider>();
            services.AddSingleton<TimeProvider>(Clock);
        });

    public static async Task<RankResponse> RankAsync(HttpClient client, long user, long[] items, int k = 10)
    {
        using var response = await client.PostAsJsonAsync("/rank", new RankRequest(user, items, k), Json);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<RankResponse>(Json))!;
    }
}

public sealed class RankingServiceTests
{
    private static readonly long[] Candidates = Enumerable.Range(1, 200).Select(i => (long)i * 37).ToArray();

    [Fact]
    public async Task Rank_returns_the_top_k_by_the_sum_of_each_models_dot_product()
    {
        await using var service = new ServiceFixture();
        using var client = service.CreateClient();

        var response = await ServiceFixture.RankAsync(client, 4242, Candidates, k: 5);

        // Independently: each model's tower output for the user, dotted with each item's embedding, summed.
        var expected = Candidates.Select(item =>
        {
            float score = 0;
            foreach (var model in service.Towers.Models)
            {
                var tower = service.Towers.Tower(model);
                var user = new float[tower.Dimensions];
                var embedding = new float[tower.Dimensions];
                tower.Compute(4242, user);
                ItemEmbeddings.Fill(service.Towers.ItemSeeds[model], item, embedding);
                score += TensorPrimitives.Dot(user, embedding);
            }

            return (Item: item, Score: score);
        }).OrderByDescending(p => p.Score).ThenBy(p => p.Item).Take(5).ToArray();

        Assert.Equal(expected.Select(p => p.Item), response.Items.Select(i => i.ItemId));
        Assert.All(expected.Zip(response.Items), p => Assert.Equal(p.First.Score, p.Second.Score, 3));
        Assert.Equal(["ctr", "cvr", "engagement"], response.Models.Keys.Order());
        Assert.All(response.Models.Values, m => Assert.Equal(EmbeddingSource.Fresh, m.Source));
    }

    [Fact]
    public async Task The_cvr_model_runs_on_its_onnx_file_and_answers_fresh_then_direct()
    {
        await using var service = new ServiceFixture();
        using var client = service.CreateClient();

        var first = await ServiceFixture.RankAsync(client, 777, Candidates, k: 3);
        var second = await ServiceFixture.RankAsync(client, 777, Candidates, k: 3);

        Assert.NotNull(service.Towers.Tower("cvr").Onnx); // batches of cvr run on ONNX Runtime
        Assert.Null(service.Towers.Tower("ctr").Onnx);
        Assert.Equal(EmbeddingSource.Fresh, first.Models["cvr"].Source);
        Assert.Equal(EmbeddingSource.Direct, second.Models["cvr"].Source);
        Assert.Equal(first.Items.Select(i => i.ItemId), second.Items.Select(i => i.ItemId));
    }

    [Fact]
    public async Task ERCaches_metrics_are_scraped_by_Prometheus_and_the_health_check_is_mapped()
    {
        await using var service = new ServiceFixture();
        using var client = service.CreateClient();
        await ServiceFixture.RankAsync(client, 11, Candidates);
        await ServiceFixture.RankAsync(client, 11, Candidates);

        string metrics = await client.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        Assert.Matches("ercache_requests_total\\{[^}]*model=\"ctr\"[^}]*source=\"fresh\"[^}]*\\} 1", metrics);
        Assert.Matches("ercache_requests_total\\{[^}]*model=\"ctr\"[^}]*source=\"direct\"[^}]*\\} 1", metrics);

        using var health = await client.GetAsync(new Uri("/health", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Equal("Healthy", await health.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task A_repeat_within_the_ttl_is_served_from_the_direct_tier_with_its_age()
    {
        await using var service = new ServiceFixture();
        using var client = service.CreateClient();

        var first = await ServiceFixture.RankAsync(client, 7, Candidates);
        service.Clock.Advance(TimeSpan.FromSeconds(20)); // inside every model's direct TTL (the shortest is 30 s)
        var second = await ServiceFixture.RankAsync(client, 7, Candidates);
        service.Clock.Advance(TimeSpan.FromSeconds(15)); // engagement (30 s) has expired; ctr (1 min) and cvr (5 min) have not
        var third = await ServiceFixture.RankAsync(client, 7, Candidates);

        Assert.All(first.Models.Values, m => Assert.Equal(EmbeddingSource.Fresh, m.Source));
        Assert.All(second.Models.Values, m => Assert.Equal((EmbeddingSource.Direct, 20_000.0), (m.Source, m.AgeMs)));
        Assert.Equal((EmbeddingSource.Direct, 35_000.0), (third.Models["ctr"].Source, third.Models["ctr"].AgeMs));
        Assert.Equal(EmbeddingSource.Fresh, third.Models["engagement"].Source);
        Assert.Equal(first.Items.Select(i => i.ItemId).Take(3), second.Items.Select(i => i.ItemId).Take(3)); // same user, same ranking
    }

    [Fact]
    public async Task A_deleted_user_is_inferred_again_and_never_served_from_a_tier()
    {
        await using var service = new ServiceFixture();
        using var client = service.CreateClient();
        await ServiceFixture.RankAsync(client, 11, Candidates);
        Assert.All((await ServiceFixture.RankAsync(client, 11, Candidates)).Models.Values, m => Assert.Equal(EmbeddingSource.Direct, m.Source));
        long users = service.Towers.Models.Sum(m => service.Towers.Tower(m).Users);

        using var deleted = await client.DeleteAsync(new Uri("/users/11", UriKind.Relative));
        var removal = await deleted.Content.ReadFromJsonAsync<RemovalResponse>(ServiceFixture.Json);

        Assert.Equal((HttpStatusCode.OK, 11L), (deleted.StatusCode, removal!.UserId));
        Assert.True(removal.Returned > 0);
        Assert.All((await ServiceFixture.RankAsync(client, 11, Candidates)).Models.Values, m => Assert.Equal(EmbeddingSource.Fresh, m.Source));
        Assert.Equal(users + service.Towers.Models.Count(), service.Towers.Models.Sum(m => service.Towers.Tower(m).Users)); // each model inferred it again
    }

    [Fact]
    public async Task With_every_inference_failing_known_users_get_failover_embeddings_and_no_request_fails()
    {
        await using var service = new ServiceFixture();
        using var client = service.CreateClient();
        await ServiceFixture.RankAsync(client, 1, Candidates); // user 1 now has failover entries in every model

        foreach (var model in service.Towers.Models)
        {
            service.Towers.Inference(model).Faults = new FaultSettings { ErrorRate = 1 }; // the fault switch
        }

        service.Clock.Advance(TimeSpan.FromMinutes(10)); // every direct entry has expired; every failover entry is alive
        var known = await ServiceFixture.RankAsync(client, 1, Candidates);
        var unknown = await ServiceFixture.RankAsync(client, 2, Candidates);

        Assert.All(known.Models.Values, m => Assert.Equal((EmbeddingSource.Failover, InferenceFailureCause.Error, 600_000.0), (m.Source, m.FailureCause, m.AgeMs)));
        Assert.Equal(10, known.Items.Count); // ranked on the failover embeddings
        Assert.All(unknown.Models.Values, m => Assert.Equal(EmbeddingSource.Fallback, m.Source));
        Assert.All(unknown.Items, i => Assert.Equal(0f, i.Score)); // no embedding: every score is zero, still a 200
    }

    [Fact]
    public async Task Stats_report_exactly_the_requests_the_test_made_by_model_and_source()
    {
        await using var service = new ServiceFixture();
        using var client = service.CreateClient();
        var seen = new Dictionary<(string, EmbeddingSource), long>();
        foreach (long user in new long[] { 1, 2, 1, 3, 1, 2 })
        {
            var r = await ServiceFixture.RankAsync(client, user, Candidates);
            foreach (var (model, m) in r.Models)
            {
                seen[(model, m.Source)] = seen.GetValueOrDefault((model, m.Source)) + 1;
            }
        }

        var stats = (await client.GetFromJsonAsync<StatsResponse>("/stats", ServiceFixture.Json))!;

        foreach (var model in service.Towers.Models)
        {
            Assert.Equal(3, seen[(model, EmbeddingSource.Fresh)]);
            Assert.Equal(3, seen[(model, EmbeddingSource.Direct)]);
            Assert.Equal(3, ERCacheStats.Requests(stats.Counters, model, "fresh"));
            Assert.Equal(3, ERCacheStats.Requests(stats.Counters, model, "direct"));
            Assert.Equal(0, ERCacheStats.Requests(stats.Counters, model, "fallback"));
            Assert.Equal(3, stats.Towers[model].Users);
            Assert.Equal(3, stats.Counters[$"ercache.entries{{model={model},tier=direct}}"]);
        }
    }

    [Fact]
    public async Task The_towers_are_warmed_before_traffic_without_touching_the_cache_or_the_stats()
    {
        await using var service = new ServiceFixture();
        using var client = service.CreateClient(); // starts the host, and with it the warm-up

        var stats = (await client.GetFromJsonAsync<StatsResponse>("/stats", ServiceFixture.Json))!;

        Assert.Equal(TowerWarmup.DefaultUsers * service.Towers.Models.Count(), service.Towers.WarmupUsers);
        foreach (var model in service.Towers.Models)
        {
            Assert.Equal(0, stats.Towers[model].Users);
            Assert.Equal(0, stats.Towers[model].ComputeMs);
            Assert.Equal(0, stats.Counters.GetValueOrDefault($"ercache.entries{{model={model},tier=direct}}"));
        }
    }

    [Fact]
    public async Task A_request_without_items_is_rejected_with_the_reason()
    {
        await using var service = new ServiceFixture();
        using var client = service.CreateClient();

        using var response = await client.PostAsJsonAsync("/rank", new RankRequest(1, [], 10), ServiceFixture.Json);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("Give 1 to 1000 candidate item ids (got 0).", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}
