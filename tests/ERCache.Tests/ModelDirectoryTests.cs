using System.Collections.Frozen;
using ERCache.Models;
using ERCache.Tests.Infrastructure;

namespace ERCache.Tests;

/// <summary><see cref="ModelDirectory"/>: a model found by name, by the string instance the caller passed once it has
/// been resolved, by a case-insensitive lookup otherwise; never another model, never a version a reload replaced.</summary>
public sealed class ModelDirectoryTests
{
    [Fact]
    public void Every_spelling_resolves_to_its_model_and_a_reload_is_seen_through_a_name_resolved_before()
    {
        using var host = new ConfiguredHost(ConfiguredHost.Json(ConfiguredHost.Model("ctr", dimensions: 4) + "," + ConfiguredHost.Model("other", dimensions: 8)));
        string literal = "ctr";
        string[] spellings = [literal, new string("ctr".AsSpan()), "CTR", "Ctr", new string("OTHER".AsSpan())];
        ModelPolicy[] Resolve() => [.. spellings.Select(host.Cache.GetPolicy)];

        var first = Resolve();
        var again = Resolve(); // now found by instance where the first call took a slot

        Assert.All(first.Concat(again), p => Assert.Equal(p.Name == "ctr" ? 4 : 8, p.Dimensions));
        Assert.Equal(["ctr", "ctr", "ctr", "ctr", "other"], again.Select(p => p.Name));

        host.Reload(ConfiguredHost.Json(ConfiguredHost.Model("ctr", dimensions: 4, version: "v2") + "," + ConfiguredHost.Model("other", dimensions: 8)));
        Assert.Equal(["v2", "v2", "v2", "v2", "v1"], Resolve().Select(p => p.Version));

        host.Reload(ConfiguredHost.Json(ConfiguredHost.Model("other", dimensions: 8)));
        Assert.Throws<ArgumentException>(() => host.Cache.GetPolicy(literal));
        Assert.Throws<ArgumentException>(() => host.Cache.GetPolicy("CTR"));
        Assert.Equal(8, host.Cache.GetPolicy(spellings[4]).Dimensions);
    }

    [Fact]
    public void Names_built_anew_on_every_call_cannot_keep_the_slots_from_a_name_passed_as_one_instance()
    {
        using var host = new ConfiguredHost(ConfiguredHost.Json(ConfiguredHost.Model("ctr")));
        var state = host.Cache.ResolveState("ctr");
        var directory = new ModelDirectory(new Dictionary<string, ModelVersionState> { ["ctr"] = state }.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase));
        for (int i = 0; i < 1_000; i++)
        {
            Assert.True(directory.TryGet(new string("ctr".AsSpan()), out _)); // every slot taken by an instance used once
        }

        string literal = "ctr";
        bool firstTime = directory.ResolvesByInstance(literal);
        for (int i = 0; i < 200 && !directory.ResolvesByInstance(literal); i++)
        {
            Assert.True(directory.TryGet(literal, out var found) && ReferenceEquals(found, state));
        }

        Assert.False(firstTime);
        Assert.True(directory.ResolvesByInstance(literal));
    }

    [Fact]
    public void Names_sharing_a_slot_never_resolve_to_each_others_model()
    {
        // Hundreds of instances of each name in a table of 16 slots: most find a slot taken by another name's instance.
        using var host = new ConfiguredHost(ConfiguredHost.Json(ConfiguredHost.Model("a") + "," + ConfiguredHost.Model("b") + "," + ConfiguredHost.Model("c")));
        string[] names = ["a", "b", "c"];
        var states = names.ToDictionary(n => n, host.Cache.ResolveState);
        var directory = new ModelDirectory(states.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase));
        var instances = Enumerable.Range(0, 300).Select(i => new string(names[i % 3].AsSpan())).ToArray();

        int sharedSlots = instances.GroupBy(directory.SlotOf).Count(g => g.Distinct().Count() > 1);
        int wrong = 0;
        for (int round = 0; round < 3; round++)
        {
            foreach (var name in instances)
            {
                if (!directory.TryGet(name, out var state) || !ReferenceEquals(state, states[name]))
                {
                    wrong++;
                }
            }
        }

        Assert.True(sharedSlots > 0, "the instances of different names must share slots for this test to mean anything");
        Assert.Equal(0, wrong);
        Assert.False(directory.TryGet(new string("d".AsSpan()), out _));
        Assert.True(directory.TryGet("B", out var upper) && ReferenceEquals(upper, states["b"]));
    }
}
