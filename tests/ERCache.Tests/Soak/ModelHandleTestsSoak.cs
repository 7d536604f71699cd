using ERCache.Tests.Infrastructure;

namespace ERCache.Tests;

/// <summary>The real-thread and real-clock tests of <see cref="ModelHandleTests"/>.</summary>
[Collection(SoakDefinition.Name)]
public sealed class ModelHandleTestsSoak
{
    [Fact]
    public async Task Threads_sharing_a_handle_through_reloads_only_ever_get_their_own_users_vectors()
    {
        using var host = new ConfiguredHost(ConfiguredHost.Json(ConfiguredHost.Model("ctr", version: "v0")));
        var model = host.Cache.GetModel("ctr");
        using var stop = new CancellationTokenSource();
        var readers = Enumerable.Range(0, 4).Select(thread => Task.Run(async () =>
        {
            int wrong = 0, reads = 0;
            var vector = new float[4];
            for (int i = 0; i < 2_000; i++)
            {
                long user = ((thread * 97) + i) % 50;
                var result = await model.GetAsync(user, vector);
                reads++;
                if (result.HasVector && !TestTower.BelongsTo(vector, user))
                {
                    wrong++;
                }
            }

            return (wrong, reads);
        })).ToArray();

        for (int version = 1; version <= 5; version++)
        {
            host.Reload(ConfiguredHost.Json(ConfiguredHost.Model("ctr", version: $"v{version}")));
            await Task.Yield();
        }

        var outcomes = await Task.WhenAll(readers).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.All(outcomes, o => Assert.Equal((0, 2_000), o));
        Assert.Equal("v5", model.Policy.Version);
    }
}
